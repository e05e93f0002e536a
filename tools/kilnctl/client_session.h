// What `kilnctl` lends a build from its own process, the way buildctl's session does:
// --local directories, --secret files or environment variables, --ssh agent sockets.
//
// Secrets are read when a step asks for them, never kept in memory longer than the call, and
// never printed: errors name the secret id and the source kind only.
//
// Thread-safety: immutable after construction.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ops/session.h"

namespace kiln::tools::kilnctl {

// Parses buildctl's CSV flag values: `type=oci,dest=out.tar`, with double-quoted fields for
// values holding commas ("name=\"a,b\"").  Several names may also be given as `name=a,name=b`
// or unquoted as `name=a,b`.  InvalidArgument for any other field without '='.
absl::StatusOr<std::map<std::string, std::string>> ParseCsvAttrs(const std::string& value,
                                                                 const char* flag);

class FlagSecrets : public engine::Secrets {
 public:
  // From --secret values: id=ID[,src=PATH|source=PATH|env=VAR].  Without a source, the
  // environment variable named ID is used.
  static absl::StatusOr<std::shared_ptr<FlagSecrets>> FromFlags(
      const std::vector<std::string>& flags);
  absl::StatusOr<std::string> Get(const std::string& id) override;

 private:
  struct Source {
    std::string file;
    std::string env;
  };
  std::map<std::string, Source> sources_;
};

class FlagSsh : public engine::SshAgents {
 public:
  // From --ssh values: `default` ($SSH_AUTH_SOCK), `ID=SOCKET`.
  static absl::StatusOr<std::shared_ptr<FlagSsh>> FromFlags(const std::vector<std::string>& flags);
  absl::StatusOr<std::string> SocketPath(const std::string& id) override;

 private:
  std::map<std::string, std::string> sockets_;
};

}  // namespace kiln::tools::kilnctl
