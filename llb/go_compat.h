// Small ports of Go and BuildKit behaviour that LLB bytes depend on.
//
// BuildKit's Go client bakes the output of encoding/json, containerd's platform normalization
// and BuildKit's own defaults into op bytes; digests only match when Kiln produces the same
// strings.  These are exact ports of those behaviours, not general-purpose utilities.  Go's path
// functions live in base/go_compat.h.
//
// Thread-safety: pure functions (NewRandomID reads the kernel's random source).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/oci.h"

namespace kiln::llb {

// A JSON string literal as Go's encoding/json writes it (HTML-safe: <, >, & become \u003c ...;
// U+2028/U+2029 escaped; invalid UTF-8 bytes become \ufffd).
std::string GoJsonQuote(std::string_view s);
// json.Marshal([]string{...}).
std::string GoJsonStringArray(const std::vector<std::string>& items);

// containerd's platforms.Normalize: lowercases, maps aliases (x86_64 -> amd64, aarch64 -> arm64,
// armhf -> arm/v7, ...), and fills an empty OS with "linux".
oci::Platform NormalizePlatform(oci::Platform p);
// platforms.Normalize(platforms.DefaultSpec()) on this machine.
oci::Platform DefaultPlatform();
// BuildKit's system.DefaultPathEnv(os): the PATH an exec gets when the image sets none.
std::string DefaultPathEnv(std::string_view os);

// BuildKit's identity.NewID(): 25 base-36 characters from 17 random bytes.
std::string NewRandomID();

}  // namespace kiln::llb
