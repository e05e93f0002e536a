#include "engine/ops/source_op.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/git_source.h"
#include "engine/ops/http_source.h"
#include "engine/ops/image_source.h"
#include "engine/ops/llb_op.h"
#include "engine/ops/local_source.h"
#include "engine/solver/progress.h"
#include "engine/worker/worker.h"
#include "nlohmann/json.hpp"
#include "snapshotter/mount.h"

namespace kiln::engine {

SourceAttrs::SourceAttrs(const pb::SourceOp& op) : identifier_(op.identifier()) {
  for (const auto& [k, v] : op.attrs()) attrs_.emplace(k, v);
}

const std::string* SourceAttrs::Find(std::string_view key) const {
  auto it = attrs_.find(key);
  return it == attrs_.end() ? nullptr : &it->second;
}

std::string SourceAttrs::Get(std::string_view key, std::string_view fallback) const {
  const std::string* v = Find(key);
  return v ? *v : std::string(fallback);
}

absl::Status SourceAttrs::Invalid(std::string_view key, std::string_view why) const {
  const std::string* v = Find(key);
  return absl::InvalidArgumentError(StrCat("source ", Quote(identifier_), ": attribute ", key,
                                           v ? StrCat("=", Quote(*v)) : std::string(), ": ", why));
}

absl::StatusOr<bool> SourceAttrs::Bool(std::string_view key, bool fallback) const {
  const std::string* v = Find(key);
  if (!v || v->empty()) return fallback;
  if (*v == "true") return true;
  if (*v == "false") return false;
  return Invalid(key, "want true or false");
}

absl::StatusOr<int64_t> SourceAttrs::Int(std::string_view key, int64_t fallback) const {
  const std::string* v = Find(key);
  if (!v) return fallback;
  auto n = ParseGoInt(*v);
  if (!n.ok()) return Invalid(key, "not an integer");
  return *n;
}

absl::StatusOr<std::vector<std::string>> SourceAttrs::StringList(std::string_view key) const {
  const std::string* v = Find(key);
  if (!v || v->empty()) return std::vector<std::string>{};
  auto j = nlohmann::json::parse(*v, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !(j.is_array() || j.is_null())) {
    return Invalid(key, "want a JSON array of strings");
  }
  std::vector<std::string> out;
  if (j.is_null()) return out;
  for (const auto& e : j) {
    if (!e.is_string()) return Invalid(key, "want a JSON array of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

absl::StatusOr<std::pair<std::string, std::string>> SplitSourceIdentifier(std::string_view id) {
  size_t sep = id.find("://");
  if (sep == std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("source identifier ", Quote(id), ": want <scheme>://<ref>"));
  }
  return std::make_pair(std::string(id.substr(0, sep)), std::string(id.substr(sep + 3)));
}

Digest SourceCacheDigest(std::string_view key) {
  return Digest::Sha256Of(StrCat("buildkit.source.v0:", key));
}

absl::StatusOr<int64_t> ParseGoInt(std::string_view text) {
  std::string s(text);
  bool neg = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  int base = 10;
  if (s.size() - i > 1 && s[i] == '0') {
    char c = s[i + 1];
    if (c == 'x' || c == 'X')
      base = 16, i += 2;
    else if (c == 'o' || c == 'O')
      base = 8, i += 2;
    else if (c == 'b' || c == 'B')
      base = 2, i += 2;
    else
      base = 8, i += 1;
  }
  if (i >= s.size()) {
    return absl::InvalidArgumentError(StrCat("invalid integer ", Quote(text)));
  }
  for (size_t k = i; k < s.size(); ++k) {
    if (!std::isalnum(static_cast<unsigned char>(s[k]))) {
      return absl::InvalidArgumentError(StrCat("invalid integer ", Quote(text)));
    }
  }
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str() + i, &end, base);
  if (errno != 0 || end != s.c_str() + s.size()) {
    return absl::InvalidArgumentError(StrCat("invalid integer ", Quote(text)));
  }
  return neg ? -v : v;
}

absl::StatusOr<ResultRef> WriteNewSnapshot(
    Worker& worker, std::string_view description,
    const std::function<absl::Status(const std::string&)>& fn) {
  KILN_ASSIGN_OR_RETURN(ActiveSnapshot active, worker.Prepare(nullptr, description));
  // A parentless active snapshot is a plain bind mount of its own directory on both
  // snapshotters; WithTempMount then hands us that directory without mounting it, which keeps
  // hardlinks and renames from the state directory possible.
  KILN_RETURN_IF_ERROR(snapshotter::WithTempMount(active.mounts(), worker.TempRoot(), fn));
  return worker.Commit(std::move(active));
}

ProgressTask::ProgressTask(const VertexProgress& progress, std::string id, int64_t total)
    : progress_(progress), id_(std::move(id)), total_(total), started_(Clock::now()) {
  StatusUpdate u;
  u.id = id_;
  u.total = total_;
  u.started = started_;
  progress_.Status(u);
}

ProgressTask::~ProgressTask() { Done(); }

void ProgressTask::Update(int64_t current) {
  current_ = current;
  StatusUpdate u;
  u.id = id_;
  u.current = current_;
  u.total = total_;
  u.started = started_;
  progress_.Status(u);
}

void ProgressTask::Done() {
  if (done_) return;
  done_ = true;
  StatusUpdate u;
  u.id = id_;
  u.current = current_ > 0 ? current_ : total_;
  u.total = total_;
  u.started = started_;
  u.completed = Clock::now();
  progress_.Status(u);
}

absl::StatusOr<std::unique_ptr<Op>> NewSourceOp(const LlbOp& op, const OpEnv& env) {
  if (op.op.op_case() != pb::Op::kSource) {
    return absl::InvalidArgumentError(StrCat("op ", op.digest.str(), " is not a source op"));
  }
  if (env.worker == nullptr) return absl::FailedPreconditionError("source op without a worker");
  KILN_ASSIGN_OR_RETURN(auto parts, SplitSourceIdentifier(op.op.source().identifier()));
  const std::string& scheme = parts.first;
  if (scheme == "docker-image") return NewImageSourceOp(op, env);
  if (scheme == "local") return NewLocalSourceOp(op, env);
  if (scheme == "git") return NewGitSourceOp(op, env);
  if (scheme == "http" || scheme == "https") return NewHttpSourceOp(op, env);
  if (scheme == "oci-layout") {
    return absl::UnimplementedError(
        StrCat("source ", Quote(op.op.source().identifier()),
               ": oci-layout sources (an OCI layout store on the client) are not supported by "
               "Kiln yet; import the layout with `kilnctl image import` and use docker-image://"));
  }
  return absl::InvalidArgumentError(
      StrCat("source ", Quote(op.op.source().identifier()), ": unknown scheme ", Quote(scheme)));
}

}  // namespace kiln::engine
