#include "engine/executor/etc_files.h"

#include <cctype>

#include <arpa/inet.h>

#include "absl/strings/str_split.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine::internal {
namespace {

constexpr std::string_view kDefaultNameservers[] = {"8.8.8.8", "8.8.4.4", "2001:4860:4860::8888",
                                                    "2001:4860:4860::8844"};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// The canonical text form of an IPv4 or IPv6 address, or "" when `text` is neither.
std::string NormalizeIp(const std::string& text) {
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) {
    return inet_ntop(AF_INET, buf, out, sizeof(out)) ? out : "";
  }
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    return inet_ntop(AF_INET6, buf, out, sizeof(out)) ? out : "";
  }
  return "";
}

// The address of a "nameserver <addr>" line (comment already stripped), or "".
std::string_view NameserverOf(std::string_view line) {
  line = Trim(line);
  constexpr std::string_view kKeyword = "nameserver";
  if (line.substr(0, kKeyword.size()) != kKeyword) return {};
  std::string_view rest = line.substr(kKeyword.size());
  if (rest.empty() || !IsSpace(rest.front())) return {};
  rest = Trim(rest);
  if (rest.empty() || rest.find_first_of(" \t") != std::string_view::npos) return {};
  return rest;
}

bool IsLocalhostNameserver(std::string_view addr) {
  if (addr == "::1") return true;
  if (addr.substr(0, 4) != "127.") return false;
  std::string text(addr);
  unsigned char buf[4];
  return inet_pton(AF_INET, text.c_str(), buf) == 1;
}

std::string_view StripComment(std::string_view line) {
  size_t hash = line.find('#');
  return hash == std::string_view::npos ? line : line.substr(0, hash);
}

}  // namespace

absl::Status ValidateHostname(std::string_view hostname) {
  if (hostname.empty() || hostname.size() > 64) {
    return absl::InvalidArgumentError(
        StrCat("hostname ", Quote(hostname), " must have 1 to 64 characters"));
  }
  for (char c : hostname) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) {
      return absl::InvalidArgumentError(
          StrCat("hostname ", Quote(hostname), " has a character other than [A-Za-z0-9._-]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MakeHostsFile(
    std::string_view hostname, const std::vector<std::pair<std::string, std::string>>& extra) {
  std::string out =
      StrCat("127.0.0.1\tlocalhost ", hostname, "\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  for (const auto& [host, ip] : extra) {
    std::string normalized = NormalizeIp(ip);
    if (normalized.empty()) {
      return absl::InvalidArgumentError(
          StrCat("extra host ", Quote(host), ": invalid IP address ", Quote(ip)));
    }
    if (host.empty() || host.find_first_of(" \t\r\n#") != std::string::npos ||
        host.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(StrCat("extra host ", Quote(host), ": invalid host name"));
    }
    StrAppend(&out, normalized, "\t", host, "\n");
  }
  return out;
}

std::vector<std::string> ResolvConfNameservers(std::string_view content) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(ToAbsl(content), '\n')) {
    std::string_view ns = NameserverOf(StripComment(FromAbsl(line)));
    if (!ns.empty()) out.emplace_back(ns);
  }
  return out;
}

std::string FilterResolvConf(std::string_view host_content, NetworkMode network) {
  if (network == NetworkMode::kHost && !ResolvConfNameservers(host_content).empty()) {
    return std::string(host_content);
  }
  std::string out;
  bool first = true;
  for (absl::string_view raw : absl::StrSplit(ToAbsl(host_content), '\n')) {
    std::string_view line = FromAbsl(raw);
    std::string_view ns = NameserverOf(StripComment(line));
    if (!ns.empty() && IsLocalhostNameserver(ns)) continue;
    if (!first) out += '\n';
    out.append(line);
    first = false;
  }
  if (ResolvConfNameservers(out).empty()) {
    for (std::string_view ns : kDefaultNameservers) StrAppend(&out, "\nnameserver ", ns);
  }
  return out;
}

}  // namespace kiln::engine::internal
