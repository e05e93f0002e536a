// The /etc/hosts and /etc/resolv.conf a step sees, generated like BuildKit does.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/executor/executor.h"

namespace kiln::engine::internal {

// "127.0.0.1\tlocalhost <hostname>\n::1\tlocalhost ip6-localhost ip6-loopback\n" followed by one
// "<ip>\t<host>\n" line per extra host (ip normalized).  Fails with InvalidArgument on a bad IP or
// a host name that could inject lines into the file.
absl::StatusOr<std::string> MakeHostsFile(
    std::string_view hostname, const std::vector<std::pair<std::string, std::string>>& extra);

// The resolv.conf for a step from the host's content (BuildKit >= 0.13, libnetwork rules).
// With the host network the content is kept unless it names no nameserver at all; otherwise
// localhost nameservers (127.x.x.x, ::1) are removed.  When no nameserver is left, Google's
// public resolvers are appended (8.8.8.8, 8.8.4.4, 2001:4860:4860::8888, 2001:4860:4860::8844).
std::string FilterResolvConf(std::string_view host_content, NetworkMode network);

// The nameserver addresses of a resolv.conf ("nameserver <ip>" lines, comments stripped).
std::vector<std::string> ResolvConfNameservers(std::string_view content);

// Validates a hostname for sethostname(2) and /etc/hosts.
absl::Status ValidateHostname(std::string_view hostname);

}  // namespace kiln::engine::internal
