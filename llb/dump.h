// Human-readable and raw dumps of a Definition (`buildctl debug dump-llb` and its pb form).
//
// DumpJson prints one JSON object per element of Definition.def, in order (duplicates
// included, as buildctl does): {"Op":<op>,"Digest":"sha256:...","OpMetadata":<metadata>}, each
// followed by "\n".  The shape is exactly what BuildKit v0.11's buildctl prints, because it is
// Go's encoding/json over BuildKit's gogo structs: field names as in ops.proto, oneofs under
// "Op" / "Action" / "User", enums as numbers, bytes as base64, map keys sorted, HTML-safe string
// escaping, and omitempty everywhere except the fields BuildKit declares non-nullable (Input
// digest/index, mount input/output, file action input/secondaryInput/output, ...; an op without
// metadata prints "OpMetadata":{"caps":null}).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "llb/definition.h"
#include "llb/pb/ops.pb.h"

namespace kiln::llb {

// Parses marshaled Definition bytes and dumps them.  InvalidArgument when the bytes or an op do
// not parse.  No graph validation (a dump must work on broken definitions too).
absl::StatusOr<std::string> DumpJson(std::string_view definition_bytes);
std::string DumpJson(const ParsedDefinition& def);

// `buildctl debug dump-llb --dot`: a Graphviz digraph with one node per op (label: source
// identifier, exec args, file actions, "merge"/"diff"/"build", else the digest) and one edge per
// input, labelled with the exec mount target it is mounted at.  Strings are quoted as Go's %q
// does for ASCII; other valid UTF-8 is written as is.
absl::StatusOr<std::string> DumpDot(std::string_view definition_bytes);
std::string DumpDot(const ParsedDefinition& def);

// One message as Go's encoding/json prints BuildKit's struct for it (no trailing newline).
std::string GoJson(const google::protobuf::Message& message);

// The `--format pb` form: the Definition serialized deterministically.
std::string MarshalDefinition(const pb::Definition& def);

}  // namespace kiln::llb
