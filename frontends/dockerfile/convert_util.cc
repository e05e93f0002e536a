// Helpers of the Dockerfile converter: ports of the small Go functions whose output ends up in
// LLB metadata or in the image config (progress names, history strings, fmt verbs, port and
// signal parsing, git reference detection).
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "base/go_compat.h"
#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/convert_internal.h"
#include "frontends/dockerfile/go_compat.h"
#include "llb/go_compat.h"

namespace kiln::frontends::dockerfile {

absl::StatusOr<oci::Platform> ParsePlatformSpecifier(std::string_view specifier) {
  auto invalid = [&](std::string why) {
    return absl::InvalidArgumentError(
        StrCat(go::Quote(specifier), ": ", why, ": invalid argument"));
  };
  if (specifier.find('*') != std::string_view::npos) return invalid("wildcards not yet supported");
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = specifier.find('/', start);
    parts.emplace_back(specifier.substr(start, slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  for (const std::string& part : parts) {
    bool ok = !part.empty();
    for (char ch : part) {
      ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-');
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          StrCat(go::Quote(part), " is an invalid component of ", go::Quote(specifier),
                 ": platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid "
                 "argument"));
    }
  }
  static const std::set<std::string> kKnownOS = {
      "aix",   "android", "darwin", "dragonfly", "freebsd", "hurd",    "illumos", "ios", "js",
      "linux", "nacl",    "netbsd", "openbsd",   "plan9",   "solaris", "windows", "zos"};
  static const std::set<std::string> kKnownArch = {
      "386",     "amd64",   "amd64p32", "arm",    "armbe",  "arm64",    "arm64be",   "ppc64",
      "ppc64le", "loong64", "mips",     "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le",
      "ppc",     "riscv",   "riscv64",  "s390",   "s390x",  "sparc",    "sparc64",   "wasm"};
  const oci::Platform host = llb::DefaultPlatform();
  oci::Platform p;
  switch (parts.size()) {
    case 1: {
      p.os = oci::NormalizeOs(parts[0]);
      if (kKnownOS.count(p.os)) {
        p.architecture = host.architecture;
        if (p.architecture == "arm" && host.variant != "v7") p.variant = host.variant;
        return p;
      }
      std::tie(p.architecture, p.variant) = oci::NormalizeArchVariant(parts[0], "");
      if (p.architecture == "arm" && p.variant == "v7") p.variant.clear();
      if (kKnownArch.count(p.architecture)) {
        p.os = host.os;
        return p;
      }
      return invalid("unknown operating system or architecture");
    }
    case 2:
      p.os = oci::NormalizeOs(parts[0]);
      std::tie(p.architecture, p.variant) = oci::NormalizeArchVariant(parts[1], "");
      if (p.architecture == "arm" && p.variant == "v7") p.variant.clear();
      return p;
    case 3:
      p.os = oci::NormalizeOs(parts[0]);
      std::tie(p.architecture, p.variant) = oci::NormalizeArchVariant(parts[1], parts[2]);
      if (p.architecture == "arm64" && p.variant.empty()) p.variant = "v8";
      return p;
  }
  return invalid("cannot parse platform specifier");
}

std::string FormatPlatformSpecifier(const oci::Platform& p) {
  if (p.os.empty()) return "unknown";
  return PathJoin({p.os, p.architecture, p.variant});
}

namespace internal {

// ---- dispatch states ----

DispatchState* DispatchStates::Add(std::unique_ptr<DispatchState> ds) {
  // Go: addState looks the base name up without lower-casing it.
  for (const auto& [name, st] : by_name_) {
    if (name == ds->stage.base_name) ds->base = st;
  }
  DispatchState* raw = ds.get();
  if (!ds->stage.name.empty()) {
    const std::string lower = go::AsciiLower(ds->stage.name);
    bool replaced = false;
    for (auto& [name, st] : by_name_) {
      if (name == lower) {
        st = raw;
        replaced = true;
      }
    }
    if (!replaced) by_name_.emplace_back(lower, raw);
  }
  states_.push_back(std::move(ds));
  return raw;
}

DispatchState* DispatchStates::AddDetached(std::unique_ptr<DispatchState> ds) {
  detached_.push_back(std::move(ds));
  return detached_.back().get();
}

DispatchState* DispatchStates::FindByName(std::string_view name) const {
  const std::string lower = go::AsciiLower(name);
  for (const auto& [n, st] : by_name_) {
    if (n == lower) return st;
  }
  return nullptr;
}

absl::StatusOr<DispatchState*> DispatchStates::FindByIndex(int64_t index) const {
  if (index < 0 || index >= static_cast<int64_t>(states_.size())) {
    return absl::InvalidArgumentError(StrCat("invalid stage index ", index));
  }
  return states_[index].get();
}

bool DispatchOpt::CapSupported(std::string_view cap) const {
  if (!convert->llb_caps) return true;
  return convert->llb_caps->count(cap) > 0;
}

// ---- progress names ----

namespace {

// Go's platformFromEnv: the platform the TARGET* variables describe, if any.
std::optional<oci::Platform> PlatformFromEnv(const std::vector<std::string>& env) {
  oci::Platform p;
  bool set = false;
  for (const std::string& kv : env) {
    auto [k, v] = ParseKeyValue(kv);
    if (kv.find('=') == std::string::npos) continue;  // Go would index out of range
    if (k == "TARGETPLATFORM") {
      absl::StatusOr<oci::Platform> parsed = ParsePlatformSpecifier(v);
      if (!parsed.ok()) continue;
      return *parsed;
    }
    if (k == "TARGETOS") {
      p.os = v;
      set = true;
    } else if (k == "TARGETARCH") {
      p.architecture = v;
      set = true;
    } else if (k == "TARGETVARIANT") {
      p.variant = v;
      set = true;
    }
  }
  if (!set) return std::nullopt;
  return p;
}

std::string FormatTargetPlatform(const oci::Platform& base, std::optional<oci::Platform> target) {
  if (!target) return "";
  if (target->os.empty()) target->os = base.os;
  if (target->architecture.empty()) target->architecture = base.architecture;
  oci::Platform p = llb::NormalizePlatform(*target);
  if (p.os == base.os && p.architecture != base.architecture) {
    std::string arch_variant = p.architecture;
    if (!p.variant.empty()) StrAppend(&arch_variant, "/", p.variant);
    return StrCat("->", arch_variant);
  }
  if (p.os != base.os) return StrCat("->", FormatPlatformSpecifier(p));
  return "";
}

}  // namespace

std::string PrefixCommand(DispatchState& d, std::string_view str, bool prefix_platform,
                          const std::optional<oci::Platform>& platform,
                          const std::vector<std::string>& env) {
  if (d.cmd_total == 0) return std::string(str);
  std::string out = "[";
  if (prefix_platform && platform) {
    StrAppend(&out, FormatPlatformSpecifier(*platform),
              FormatTargetPlatform(*platform, PlatformFromEnv(env)), " ");
  }
  if (!d.stage_name.empty()) StrAppend(&out, d.stage_name, " ");
  d.cmd_index++;
  const int width = static_cast<int>(1 + std::log10(static_cast<double>(d.cmd_total)));
  std::string index = std::to_string(d.cmd_index);
  if (static_cast<int>(index.size()) < width) index.insert(0, width - index.size(), ' ');
  StrAppend(&out, index, "/", d.cmd_total, "] ", str);
  return out;
}

std::string UppercaseCmd(std::string_view str) {
  size_t sp = str.find(' ');
  std::string head(str.substr(0, sp));
  std::string out = go::ToUpper(head);
  if (sp != std::string_view::npos) StrAppend(&out, str.substr(sp));
  return out;
}

std::string ProcessCmdEnv(const ShellLex& lex, std::string_view cmd,
                          const std::vector<std::string>& env) {
  absl::StatusOr<std::string> w = lex.ProcessWord(cmd, EnvFromList(env));
  if (!w.ok()) return std::string(cmd);
  return *w;
}

std::vector<llb::Range> ToRanges(const SourceRange& r) {
  std::vector<llb::Range> out;
  int end = r.end_line <= r.start_line ? r.start_line : r.end_line;
  for (int line = r.start_line; line <= end; ++line) {
    out.push_back(llb::Range{{line, 0}, {line, 0}});
  }
  return out;
}

llb::Constraints DfCmd(std::string_view cmd) {
  return llb::Constraints().WithDescription(
      {{"com.docker.dockerfile.v1.command", std::string(cmd)}});
}

void CommitToHistory(oci::Image& img, std::string msg, bool with_layer, bool has_state,
                     const std::optional<std::string>& epoch) {
  if (has_state) msg += " # buildkit";
  oci::History h;
  h.created_by = std::move(msg);
  h.comment = "buildkit.dockerfile.v0";
  h.empty_layer = !with_layer;
  if (epoch) h.created = *epoch;
  img.history.push_back(std::move(h));
}

std::vector<std::string> WithShell(const oci::Image& img, const std::vector<std::string>& args) {
  std::vector<std::string> shell;
  if (!img.config.shell.empty()) {
    shell = img.config.shell;
  } else if (img.platform.os == "windows") {
    shell = {"cmd", "/S", "/C"};
  } else {
    shell = {"/bin/sh", "-c"};
  }
  std::string joined;
  for (size_t i = 0; i < args.size(); ++i) {
    if (i > 0) joined += " ";
    joined += args[i];
  }
  shell.push_back(std::move(joined));
  return shell;
}

std::pair<std::string, std::string> ParseKeyValue(std::string_view env) {
  size_t eq = env.find('=');
  if (eq == std::string_view::npos) return {std::string(env), ""};
  return {std::string(env.substr(0, eq)), std::string(env.substr(eq + 1))};
}

void AddImageEnv(std::vector<std::string>& env, std::string_view key, std::string_view value) {
  for (std::string& kv : env) {
    if (ParseKeyValue(kv).first == key) {
      kv = StrCat(key, "=", value);
      return;
    }
  }
  env.push_back(StrCat(key, "=", value));
}

oci::Image EmptyImage(const oci::Platform& platform) {
  oci::Image img;
  img.platform.architecture = platform.architecture;
  img.platform.os = platform.os;
  img.platform.variant = platform.variant;
  img.rootfs.type = "layers";
  img.config.working_dir = "/";
  img.config.env = {StrCat("PATH=", llb::DefaultPathEnv(platform.os))};
  return img;
}

// ---- Go fmt ----

std::string GoQuoteSlice(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += " ";
    out += go::Quote(v[i]);
  }
  return out + "]";
}

std::string GoFormatSlice(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += " ";
    out += v[i];
  }
  return out + "]";
}

namespace {

// Go's fmtFrac: the fraction of v/10^prec without trailing zeros (and without the point when
// it is zero); returns v/10^prec.
uint64_t FmtFrac(std::string* out, uint64_t v, int prec) {
  std::string digits;
  bool print = false;
  for (int i = 0; i < prec; ++i) {
    int digit = static_cast<int>(v % 10);
    print = print || digit != 0;
    if (print) digits.insert(digits.begin(), static_cast<char>('0' + digit));
    v /= 10;
  }
  if (print) out->insert(0, "." + digits);
  return v;
}

}  // namespace

std::string GoDuration(int64_t d) {
  const bool neg = d < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(d + 1)) + 1 : static_cast<uint64_t>(d);
  std::string out;
  constexpr uint64_t kSecond = 1000000000;
  if (u < kSecond) {
    int prec = 0;
    std::string unit;
    if (u == 0) return "0s";
    if (u < 1000) {
      prec = 0;
      unit = "ns";
    } else if (u < 1000000) {
      prec = 3;
      unit = "\xc2\xb5s";  // µs
    } else {
      prec = 6;
      unit = "ms";
    }
    out = unit;
    u = FmtFrac(&out, u, prec);
    out.insert(0, std::to_string(u));
  } else {
    out = "s";
    u = FmtFrac(&out, u, 9);
    out.insert(0, std::to_string(u % 60));
    u /= 60;
    if (u > 0) {
      out.insert(0, "m");
      out.insert(0, std::to_string(u % 60));
      u /= 60;
      if (u > 0) {
        out.insert(0, "h");
        out.insert(0, std::to_string(u));
      }
    }
  }
  if (neg) out.insert(0, "-");
  return out;
}

std::string GoQuoteRune(int64_t r) {
  if (r < 0 || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) r = 0xFFFD;
  switch (r) {
    case '\a':
      return "'\\a'";
    case '\b':
      return "'\\b'";
    case '\f':
      return "'\\f'";
    case '\n':
      return "'\\n'";
    case '\r':
      return "'\\r'";
    case '\t':
      return "'\\t'";
    case '\v':
      return "'\\v'";
    case '\\':
      return "'\\\\'";
    case '\'':
      return "'\\''";
  }
  char buf[16];
  if (r < 0x20 || r == 0x7F) {
    snprintf(buf, sizeof buf, "'\\x%02x'", static_cast<unsigned>(r));
    return buf;
  }
  if (r < 0x7F) return std::string("'") + static_cast<char>(r) + "'";
  if (r < 0xA0) {
    snprintf(buf, sizeof buf, "'\\u%04x'", static_cast<unsigned>(r));
    return buf;
  }
  std::string out = "'";
  go::AppendRune(&out, static_cast<char32_t>(r));
  return out + "'";
}

// ---- EXPOSE ----

namespace {

absl::StatusOr<std::pair<uint64_t, uint64_t>> ParsePortRange(std::string_view ports) {
  auto parse = [](std::string_view s) -> absl::StatusOr<uint64_t> {
    std::string err;
    std::optional<uint64_t> v = go::ParseUint(s, 10, 16, &err);
    if (!v) return absl::InvalidArgumentError(err);
    return *v;
  };
  if (ports.empty()) return absl::InvalidArgumentError("Empty string specified for ports.");
  size_t dash = ports.find('-');
  if (dash == std::string_view::npos) {
    KILN_ASSIGN_OR_RETURN(uint64_t v, parse(ports));
    return std::pair<uint64_t, uint64_t>(v, v);
  }
  std::string_view rest = ports.substr(dash + 1);
  rest = rest.substr(0, rest.find('-'));  // Go uses parts[1] of strings.Split
  KILN_ASSIGN_OR_RETURN(uint64_t start, parse(ports.substr(0, dash)));
  KILN_ASSIGN_OR_RETURN(uint64_t end, parse(rest));
  if (end < start) {
    return absl::InvalidArgumentError(StrCat("Invalid range specified for the Port: ", ports));
  }
  return std::pair<uint64_t, uint64_t>(start, end);
}

bool ValidIP(const std::string& ip) {
  unsigned char buf[16];
  return inet_pton(AF_INET, ip.c_str(), buf) == 1 || inet_pton(AF_INET6, ip.c_str(), buf) == 1;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParsePortSpecs(const std::vector<std::string>& ports) {
  std::set<std::string> exposed;
  for (const std::string& raw : ports) {
    // splitParts
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
      size_t colon = raw.find(':', start);
      parts.push_back(raw.substr(start, colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    const size_t n = parts.size();
    std::string raw_ip, host_port, container_port = parts[n - 1];
    if (n == 2) {
      host_port = parts[0];
    } else if (n == 3) {
      raw_ip = parts[0];
      host_port = parts[1];
    } else if (n > 3) {
      for (size_t i = 0; i + 2 < n; ++i) {
        if (i > 0) raw_ip += ":";
        raw_ip += parts[i];
      }
      host_port = parts[n - 2];
    }
    // SplitProtoPort
    std::string proto;
    {
      std::vector<std::string> pp;
      size_t s = 0;
      while (true) {
        size_t slash = container_port.find('/', s);
        pp.push_back(container_port.substr(s, slash - s));
        if (slash == std::string::npos) break;
        s = slash + 1;
      }
      if (container_port.empty() || pp[0].empty()) {
        proto.clear();
        container_port.clear();
      } else if (pp.size() == 1) {
        proto = "tcp";
      } else if (pp[1].empty()) {
        proto = "tcp";
        container_port = pp[0];
      } else {
        proto = pp[1];
        container_port = pp[0];
      }
    }
    std::string ip = raw_ip;
    if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
      ip = ip.substr(1, ip.size() - 2);
    } else if (ip.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(StrCat("Invalid ip address ", raw_ip, ": address ", raw_ip,
                                               ":: too many colons in address"));
    }
    if (!ip.empty() && !ValidIP(ip)) {
      return absl::InvalidArgumentError(StrCat("Invalid ip address: ", ip));
    }
    if (container_port.empty()) {
      return absl::InvalidArgumentError(StrCat("No port specified: ", raw, "<empty>"));
    }
    absl::StatusOr<std::pair<uint64_t, uint64_t>> range = ParsePortRange(container_port);
    if (!range.ok()) {
      return absl::InvalidArgumentError(StrCat("Invalid containerPort: ", container_port));
    }
    uint64_t host_start = 0, host_end = 0;
    if (!host_port.empty()) {
      absl::StatusOr<std::pair<uint64_t, uint64_t>> hr = ParsePortRange(host_port);
      if (!hr.ok()) return absl::InvalidArgumentError(StrCat("Invalid hostPort: ", host_port));
      host_start = hr->first;
      host_end = hr->second;
    }
    if (!host_port.empty() && (range->second - range->first) != (host_end - host_start) &&
        range->second != range->first) {
      return absl::InvalidArgumentError(
          StrCat("Invalid ranges specified for container and host Ports: ", container_port, " and ",
                 host_port));
    }
    const std::string lower_proto = go::AsciiLower(proto);
    if (lower_proto != "tcp" && lower_proto != "udp" && lower_proto != "sctp") {
      return absl::InvalidArgumentError(StrCat("Invalid proto: ", proto));
    }
    for (uint64_t p = range->first; p <= range->second; ++p) {
      exposed.insert(StrCat(p, "/", lower_proto));
    }
  }
  return std::vector<std::string>(exposed.begin(), exposed.end());
}

absl::Status ValidateSignal(std::string_view raw) {
  std::string err;
  std::optional<int64_t> n = go::ParseInt(raw, 64, &err);
  if (n.has_value()) {
    if (*n == 0) return absl::InvalidArgumentError(StrCat("invalid signal: ", raw));
    return absl::OkStatus();
  }
  static const std::set<std::string> kNames = [] {
    std::set<std::string> s = {"ABRT", "ALRM", "BUS",   "CHLD",   "CLD",  "CONT", "FPE",    "HUP",
                               "ILL",  "INT",  "IO",    "IOT",    "KILL", "PIPE", "POLL",   "PROF",
                               "PWR",  "QUIT", "SEGV",  "STKFLT", "STOP", "SYS",  "TERM",   "TRAP",
                               "TSTP", "TTIN", "TTOU",  "URG",    "USR1", "USR2", "VTALRM", "WINCH",
                               "XCPU", "XFSZ", "RTMIN", "RTMAX"};
    for (int i = 1; i <= 15; ++i) s.insert(StrCat("RTMIN+", i));
    for (int i = 1; i <= 14; ++i) s.insert(StrCat("RTMAX-", i));
    return s;
  }();
  std::string upper = go::ToUpper(raw);
  if (upper.rfind("SIG", 0) == 0) upper = upper.substr(3);
  if (!kNames.count(upper)) return absl::InvalidArgumentError(StrCat("invalid signal: ", raw));
  return absl::OkStatus();
}

// ---- ADD sources ----

std::optional<GitRef> ParseGitRef(std::string_view ref) {
  GitRef res;
  if (ref.rfind("github.com/", 0) == 0) {
    res.indistinguishable_from_local = true;
  } else {
    enum { kUnknown, kHttp, kHttps, kGit, kSsh } proto = kUnknown;
    for (auto [prefix, p] : {std::pair<std::string_view, int>{"http://", kHttp},
                             {"https://", kHttps},
                             {"git://", kGit},
                             {"ssh://", kSsh}}) {
      if (ref.rfind(prefix, 0) == 0) proto = static_cast<decltype(proto)>(p);
    }
    if (proto == kUnknown) {
      // sshutil.IsImplicitSSHTransport: ^[a-zA-Z0-9-_]+@[a-zA-Z0-9-.]+:.*$
      size_t at = ref.find('@');
      bool ok = at != std::string_view::npos && at > 0;
      for (size_t i = 0; ok && i < at; ++i) {
        char ch = ref[i];
        ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
      }
      size_t colon = ok ? ref.find(':', at + 1) : std::string_view::npos;
      ok = ok && colon != std::string_view::npos && colon > at + 1;
      for (size_t i = at + 1; ok && i < colon; ++i) {
        char ch = ref[i];
        ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.';
      }
      if (!ok) return std::nullopt;
    }
    if (proto == kHttp || proto == kHttps) {
      // \.git(?:#.+)?$
      std::string_view before = ref;
      size_t hash = ref.find('#');
      if (hash != std::string_view::npos && hash + 1 < ref.size()) before = ref.substr(0, hash);
      bool match = before.size() >= 4 && before.substr(before.size() - 4) == ".git";
      if (!match) return std::nullopt;
    }
  }
  size_t hash = ref.find('#');
  res.remote = std::string(ref.substr(0, hash));
  if (res.remote.empty()) return std::nullopt;
  std::string fragment = hash == std::string_view::npos ? "" : std::string(ref.substr(hash + 1));
  size_t colon = fragment.find(':');
  res.commit = fragment.substr(0, colon);
  if (colon != std::string::npos) res.subdir = fragment.substr(colon + 1);
  return res;
}

bool IsHttpSource(std::string_view src) {
  return src.rfind("http://", 0) == 0 || src.rfind("https://", 0) == 0;
}

std::string HttpSourceFilename(std::string_view url) {
  // url.Parse: the path is what follows the authority, before '?' or '#'.
  std::string_view rest = url.substr(url.find("://") + 3);
  size_t end = rest.find_first_of("?#");
  rest = rest.substr(0, end);
  size_t slash = rest.find('/');
  std::string path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  // Percent-decoding as url.Parse does for the path.
  std::string decoded;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size() && std::isxdigit(path[i + 1]) &&
        std::isxdigit(path[i + 2])) {
      decoded.push_back(static_cast<char>(std::stoi(path.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      decoded.push_back(path[i]);
    }
  }
  // path.Base
  std::string base;
  if (decoded.empty()) {
    base = ".";
  } else {
    std::string p = decoded;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    size_t last = p.rfind('/');
    base = last == std::string::npos ? p : p.substr(last + 1);
    if (base.empty()) base = "/";
  }
  if (base == "." || base == "/") return "__unnamed__";
  return base;
}

}  // namespace internal
}  // namespace kiln::frontends::dockerfile
