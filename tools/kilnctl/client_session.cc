#include "tools/kilnctl/client_session.h"

#include <cstdlib>

#include <sys/stat.h>

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::tools::kilnctl {

absl::StatusOr<std::map<std::string, std::string>> ParseCsvAttrs(const std::string& value,
                                                                 const char* flag) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (char c : value) {
    if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  if (quoted) {
    return absl::InvalidArgumentError(StrCat(flag, " ", Quote(value), ": unterminated quote"));
  }
  std::map<std::string, std::string> out;
  std::string last_key;
  for (const std::string& f : fields) {
    if (f.empty()) continue;
    size_t eq = f.find('=');
    if (eq == std::string::npos && last_key == "name") {
      // `name=a,b` unquoted: image names never hold '=', so a bare field after name= is
      // another name (buildctl wants "name=a,b" quoted; the unquoted form is what users type).
      out["name"] += "," + f;
      continue;
    }
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          StrCat(flag, " ", Quote(value), ": field ", Quote(f), " is not KEY=VALUE"));
    }
    std::string key = f.substr(0, eq);
    last_key = key;
    if (out.count(key) && key == "name") {
      out[key] += "," + f.substr(eq + 1);  // name=a,name=b like a list
    } else {
      out[key] = f.substr(eq + 1);
    }
  }
  return out;
}

absl::StatusOr<std::shared_ptr<FlagSecrets>> FlagSecrets::FromFlags(
    const std::vector<std::string>& flags) {
  auto s = std::make_shared<FlagSecrets>();
  for (const std::string& flag : flags) {
    KILN_ASSIGN_OR_RETURN(auto attrs, ParseCsvAttrs(flag, "--secret"));
    std::string id = attrs.count("id") ? attrs["id"] : "";
    if (id.empty()) {
      return absl::InvalidArgumentError(StrCat("--secret ", Quote(flag), ": id is required"));
    }
    Source src;
    if (attrs.count("src")) src.file = attrs["src"];
    if (attrs.count("source")) src.file = attrs["source"];
    if (attrs.count("env")) src.env = attrs["env"];
    if (src.file.empty() && src.env.empty()) src.env = id;
    for (const auto& [k, v] : attrs) {
      if (k != "id" && k != "src" && k != "source" && k != "env" && k != "type") {
        return absl::InvalidArgumentError(
            StrCat("--secret ", Quote(flag), ": unknown key ", Quote(k)));
      }
    }
    // As buildctl: a source file that is not there fails the build before it starts, also
    // when no step would need it (a non-required secret mount would otherwise be silently
    // skipped).
    struct stat st;
    if (!src.file.empty() && ::stat(src.file.c_str(), &st) != 0) {
      return ErrnoStatus(StrCat("--secret id=", id, ": failed to stat ", Quote(src.file)));
    }
    s->sources_[id] = src;
  }
  return s;
}

absl::StatusOr<std::string> FlagSecrets::Get(const std::string& id) {
  auto it = sources_.find(id);
  if (it == sources_.end()) {
    return absl::NotFoundError(
        StrCat("secret ", Quote(id), " not provided (use --secret id=", id, ",src=FILE)"));
  }
  if (!it->second.file.empty()) {
    auto data = ReadFileToString(it->second.file);
    if (!data.ok()) {
      return absl::Status(data.status().code(),
                          StrCat("secret ", Quote(id), ": cannot read its source file"));
    }
    return data;
  }
  const char* v = std::getenv(it->second.env.c_str());
  if (!v) {
    return absl::NotFoundError(StrCat("secret ", Quote(id), ": environment variable ",
                                      Quote(it->second.env), " is not set"));
  }
  return std::string(v);
}

absl::StatusOr<std::shared_ptr<FlagSsh>> FlagSsh::FromFlags(const std::vector<std::string>& flags) {
  auto s = std::make_shared<FlagSsh>();
  for (const std::string& flag : flags) {
    std::string id = flag, path;
    size_t eq = flag.find('=');
    if (eq != std::string::npos) {
      id = flag.substr(0, eq);
      path = flag.substr(eq + 1);
    }
    if (id.empty()) return absl::InvalidArgumentError(StrCat("--ssh ", Quote(flag), ": empty id"));
    if (path.empty()) {
      const char* sock = std::getenv("SSH_AUTH_SOCK");
      if (!sock || !*sock) {
        return absl::InvalidArgumentError(
            StrCat("--ssh ", Quote(flag), ": SSH_AUTH_SOCK is not set; give ", id, "=SOCKET"));
      }
      path = sock;
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
      return absl::InvalidArgumentError(
          StrCat("--ssh ", Quote(flag), ": ", Quote(path), " is not a unix socket"));
    }
    s->sockets_[id] = path;
  }
  return s;
}

absl::StatusOr<std::string> FlagSsh::SocketPath(const std::string& id) {
  auto it = sockets_.find(id.empty() ? "default" : id);
  if (it == sockets_.end()) {
    return absl::NotFoundError(
        StrCat("ssh agent ", Quote(id.empty() ? "default" : id), " not forwarded (use --ssh)"));
  }
  return it->second;
}

}  // namespace kiln::tools::kilnctl
