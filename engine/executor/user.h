// Resolving a step's `user` string to ids, the way BuildKit (executor/oci/user.go) and runc
// (libcontainer/user.GetExecUser) do together.
//
//   ""            -> root: uid 0, its passwd gid, its /etc/group memberships (0:0 without passwd)
//   "uid:gid"     -> numeric fast path (either side may also be "root"), no supplementary groups
//   "name"/"uid"  -> passwd entry (a numeric uid needs none); supplementary groups from
//                    /etc/group membership of the user's name
//   "user:group"  -> gid of that group (a numeric gid needs no entry); no supplementary groups
// The primary gid is always the first of the additional groups (BuildKit's
// ensureAdditionalGids).  `home` is the passwd home, or "/" when there is no entry (runc sets
// HOME from it when the environment has none).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "absl/status/statusor.h"

namespace kiln::engine::internal {

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // setgroups(2) list, primary gid first
  std::string home = "/";
};

// `passwd` / `group` are the contents of the root filesystem's files ("" when missing).  An
// unknown name fails with InvalidArgument "unable to find user bogus: no matching entries in
// passwd file" (BuildKit's wording).
absl::StatusOr<Identity> ResolveUser(std::string_view user, std::string_view passwd,
                                     std::string_view group);

}  // namespace kiln::engine::internal
