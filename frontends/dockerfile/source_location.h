// Where in a Dockerfile something is, and errors/warnings that carry that place.
//
// Every error the Dockerfile frontend returns for a problem in the file is an absl::Status
// whose message starts with "<file>:<line>: " (or "<file>:<start>-<end>: " for a range of
// lines), e.g. "Dockerfile:7: unknown instruction: RUNN", and which carries the SourceRange as
// a structured payload that GetSourceRange() extracts (a UI can then show the lines).
//
// Thread-safety: value types and pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace kiln::frontends::dockerfile {

// A span of a source file.  Lines and columns are 1-based; a column of 0 means "the whole
// line" (BuildKit itself only tracks lines).  end_line >= start_line.
struct SourceRange {
  std::string file;
  int start_line = 0;
  int start_col = 0;
  int end_line = 0;
  int end_col = 0;

  // "Dockerfile:7", "Dockerfile:7-9" (columns are not printed).
  std::string ToString() const;
  bool operator==(const SourceRange&) const = default;
};

// A located InvalidArgument error: message "<range>: <message>", range attached as payload.
absl::Status LocatedError(const SourceRange& range, std::string_view message);

// Attaches `range` to `status` (prefixing the message the same way) unless it is OK or already
// carries a range; code and other payloads are kept.
absl::Status WithLocation(const absl::Status& status, const SourceRange& range);

// The range attached by LocatedError / WithLocation, if any.
std::optional<SourceRange> GetSourceRange(const absl::Status& status);

// A non-fatal finding (BuildKit's parser warnings and lint-like notes).
struct Warning {
  std::string rule;           // BuildKit's lint rule name, e.g. "NoEmptyContinuation"
  std::string short_message;  // one line, e.g. "Empty continuation line found in: RUN a b"
  std::string detail;         // longer explanation, may be empty
  std::string url;            // documentation link, may be empty
  SourceRange location;
};

}  // namespace kiln::frontends::dockerfile
