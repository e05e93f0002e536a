#include "engine/executor/user.h"

#include <charconv>
#include <cstdint>
#include <optional>

#include "absl/strings/str_split.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine::internal {
namespace {

constexpr int64_t kMaxId = (int64_t{1} << 31) - 1;

struct PasswdEntry {
  std::string name;
  int64_t uid = 0;
  int64_t gid = 0;
  std::string home;
};

struct GroupEntry {
  std::string name;
  int64_t gid = 0;
  std::vector<std::string> members;
};

// Go's strconv.Atoi: optional sign, decimal digits, nothing else.
std::optional<int64_t> Atoi(std::string_view s) {
  if (s.empty()) return std::nullopt;
  bool negative = false;
  if (s.front() == '+' || s.front() == '-') {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return negative ? -value : value;
}

// BuildKit's parseUID: "root" or an unsigned decimal.
std::optional<int64_t> ParseFastId(std::string_view s) {
  if (s == "root") return 0;
  if (s.empty() || s.front() == '+' || s.front() == '-') return std::nullopt;
  std::optional<int64_t> v = Atoi(s);
  if (!v || *v > 0xffffffffLL) return std::nullopt;
  return v;
}

std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  for (absl::string_view f : absl::StrSplit(ToAbsl(line), ':')) out.push_back(FromAbsl(f));
  return out;
}

std::string_view Field(const std::vector<std::string_view>& f, size_t i) {
  return i < f.size() ? f[i] : std::string_view();
}

std::vector<PasswdEntry> ParsePasswd(std::string_view content) {
  std::vector<PasswdEntry> out;
  for (absl::string_view raw : absl::StrSplit(ToAbsl(content), '\n')) {
    std::string_view line = TrimSpace(FromAbsl(raw));
    if (line.empty()) continue;
    auto f = Fields(line);
    PasswdEntry e;
    e.name = std::string(Field(f, 0));
    e.uid = Atoi(Field(f, 2)).value_or(0);
    e.gid = Atoi(Field(f, 3)).value_or(0);
    e.home = std::string(Field(f, 5));
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<GroupEntry> ParseGroup(std::string_view content) {
  std::vector<GroupEntry> out;
  for (absl::string_view raw : absl::StrSplit(ToAbsl(content), '\n')) {
    std::string_view line = TrimSpace(FromAbsl(raw));
    if (line.empty()) continue;
    auto f = Fields(line);
    GroupEntry e;
    e.name = std::string(Field(f, 0));
    e.gid = Atoi(Field(f, 2)).value_or(0);
    for (absl::string_view m : absl::StrSplit(ToAbsl(Field(f, 3)), ',')) {
      e.members.emplace_back(FromAbsl(m));
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::Status RangeError() {
  return absl::InvalidArgumentError(StrCat("uids and gids must be in range 0-", kMaxId));
}

// runc's HOME: the passwd home of `uid`, "/" without an entry.
std::string HomeOf(int64_t uid, const std::vector<PasswdEntry>& users) {
  for (const auto& u : users) {
    if (u.uid == uid) return u.home;
  }
  return "/";
}

struct ExecUser {
  int64_t uid = 0;
  int64_t gid = 0;
  std::vector<int64_t> sgids;
};

// runc's user.GetExecUser with zero defaults.
absl::StatusOr<ExecUser> GetExecUser(std::string_view spec, const std::vector<PasswdEntry>& users,
                                     const std::vector<GroupEntry>& groups) {
  std::string_view user_arg = spec;
  std::string_view group_arg;
  if (size_t colon = spec.find(':'); colon != std::string_view::npos) {
    user_arg = spec.substr(0, colon);
    group_arg = spec.substr(colon + 1);
    // runc splits on every ':' and keeps the second field only.
    if (size_t next = group_arg.find(':'); next != std::string_view::npos) {
      group_arg = group_arg.substr(0, next);
    }
  }
  std::optional<int64_t> uid_arg = Atoi(user_arg);
  std::optional<int64_t> gid_arg = Atoi(group_arg);

  ExecUser out;
  const PasswdEntry* matched = nullptr;
  for (const auto& u : users) {
    bool match = user_arg.empty() ? u.uid == 0 : uid_arg ? u.uid == *uid_arg : u.name == user_arg;
    if (match) {
      matched = &u;
      break;
    }
  }
  if (matched != nullptr) {
    out.uid = matched->uid;
    out.gid = matched->gid;
  } else if (!user_arg.empty()) {
    if (!uid_arg) {
      return absl::InvalidArgumentError(
          StrCat("unable to find user ", user_arg, ": no matching entries in passwd file"));
    }
    if (*uid_arg < 0 || *uid_arg > kMaxId) return RangeError();
    out.uid = *uid_arg;
  }

  if (group_arg.empty() && matched == nullptr) return out;
  std::vector<const GroupEntry*> found;
  for (const auto& g : groups) {
    bool match = false;
    if (group_arg.empty()) {
      for (const auto& m : g.members) match = match || m == matched->name;
    } else {
      match = gid_arg ? g.gid == *gid_arg : g.name == group_arg;
    }
    if (match) found.push_back(&g);
  }
  if (!group_arg.empty()) {
    if (!found.empty()) {
      out.gid = found.front()->gid;
    } else {
      if (!gid_arg) {
        return absl::InvalidArgumentError(
            StrCat("unable to find group ", group_arg, ": no matching entries in group file"));
      }
      if (*gid_arg < 0 || *gid_arg > kMaxId) return RangeError();
      out.gid = *gid_arg;
    }
  } else {
    for (const GroupEntry* g : found) out.sgids.push_back(g->gid);
  }
  return out;
}

}  // namespace

absl::StatusOr<Identity> ResolveUser(std::string_view user, std::string_view passwd,
                                     std::string_view group) {
  bool is_default = user.empty();
  if (is_default) user = "0";
  std::vector<PasswdEntry> users = ParsePasswd(passwd);

  ExecUser exec;
  std::optional<int64_t> fast_uid, fast_gid;
  if (size_t colon = user.find(':'); colon != std::string_view::npos) {
    fast_uid = ParseFastId(user.substr(0, colon));
    fast_gid = ParseFastId(user.substr(colon + 1));
  }
  if (fast_uid && fast_gid) {
    exec.uid = *fast_uid;
    exec.gid = *fast_gid;
    if (exec.uid > kMaxId || exec.gid > kMaxId) return RangeError();
  } else {
    absl::StatusOr<ExecUser> resolved = GetExecUser(user, users, ParseGroup(group));
    if (resolved.ok()) {
      exec = *std::move(resolved);
    } else if (!is_default) {
      return resolved.status();
    }
  }

  Identity id;
  id.uid = static_cast<uid_t>(exec.uid);
  id.gid = static_cast<gid_t>(exec.gid);
  bool has_primary = false;
  for (int64_t g : exec.sgids) has_primary = has_primary || g == exec.gid;
  if (!has_primary) id.groups.push_back(id.gid);
  for (int64_t g : exec.sgids) id.groups.push_back(static_cast<gid_t>(g));
  id.home = HomeOf(exec.uid, users);
  return id;
}

}  // namespace kiln::engine::internal
