#include "engine/ops/file_op.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/content_hash.h"
#include "engine/ops/copy_tree.h"
#include "engine/ops/file_actions.h"
#include "engine/ops/file_tree.h"
#include "engine/worker/worker.h"
#include "llb/dump.h"

namespace kiln::engine {
namespace {

constexpr char kFileCacheType[] = "buildkit.file.v0";

using SelectorMap = std::map<int64_t, std::vector<ContentSelector>>;

void AddSelector(SelectorMap& m, int64_t idx, const std::string& path, bool wildcard, bool follow,
                 std::vector<std::string> inc, std::vector<std::string> exc,
                 std::vector<std::string> required = {}) {
  ContentSelector s;
  s.path = path;
  s.follow_links = follow;
  s.wildcard = wildcard && ContainsWildcards(path);
  s.include_patterns = std::move(inc);
  s.exclude_patterns = std::move(exc);
  s.required_paths = std::move(required);
  m[idx].push_back(std::move(s));
}

void ProcessOwner(const pb::ChownOpt& c, SelectorMap& m) {
  if (c.has_user() && c.user().has_byname() && c.user().byname().input() >= 0) {
    AddSelector(m, c.user().byname().input(), "/etc/passwd", false, true, {}, {});
  }
  if (c.has_group() && c.group().has_byname() && c.group().byname().input() >= 0) {
    AddSelector(m, c.group().byname().input(), "/etc/group", false, true, {}, {});
  }
}

// BuildKit's isDefaultIndexes (its comparison against len(indexes) kept as is).
bool IsDefaultIndexes(const std::vector<std::array<int64_t, 3>>& idxs) {
  if (idxs.empty()) return false;
  const int64_t n = static_cast<int64_t>(idxs.size());
  for (int64_t i = 0; i < n; ++i) {
    const auto& idx = idxs[i];
    if (i == 0 && idx[0] != 0) return false;
    if (i != 0 && idx[0] != n + (i - 1)) return false;
    if (idx[1] != -1 && idx[1] != 1) return false;
    if (i == n - 1 && idx[2] != 0) return false;
    if (i != n - 1 && idx[2] != -1) return false;
  }
  return true;
}

std::string Base64Std(std::string_view s) {
  std::string out;
  absl::Base64Escape(ToAbsl(s), &out);
  return out;
}

const pb::ChownOpt* OwnerOf(const pb::FileAction& a) {
  switch (a.action_case()) {
    case pb::FileAction::kMkdir:
      return a.mkdir().has_owner() ? &a.mkdir().owner() : nullptr;
    case pb::FileAction::kMkfile:
      return a.mkfile().has_owner() ? &a.mkfile().owner() : nullptr;
    case pb::FileAction::kCopy:
      return a.copy().has_owner() ? &a.copy().owner() : nullptr;
    case pb::FileAction::kSymlink:
      return a.symlink().has_owner() ? &a.symlink().owner() : nullptr;
    default:
      return nullptr;
  }
}

// The results of the actions of one Exec, in the op's index space (inputs, then actions).
class ActionRunner {
 public:
  ActionRunner(Worker& worker, const pb::FileOp& op, std::span<const ResultRef> inputs,
               const OpContext& ctx, std::string description)
      : worker_(worker),
        op_(op),
        inputs_(inputs),
        ctx_(ctx),
        description_(std::move(description)),
        n_(static_cast<int64_t>(inputs.size())),
        slots_(op.actions_size()) {}

  absl::StatusOr<std::vector<ResultRef>> Run() {
    KILN_RETURN_IF_ERROR(Plan());
    for (int64_t i = 0; i < op_.actions_size(); ++i) {
      if (!needed_.count(n_ + i)) continue;
      KILN_RETURN_IF_ERROR(ctx_.cancel.Check());
      absl::Status s = RunAction(i);
      if (!s.ok()) return Annotate(s, StrCat("file action ", i));
    }
    std::vector<ResultRef> out;
    for (int64_t idx : outputs_) out.push_back(slots_[idx - n_].ref);
    return out;
  }

 private:
  struct Slot {
    ResultRef ref;                    // committed result
    std::unique_ptr<WriteTree> tree;  // uncommitted result, handed to its single user
  };

  absl::Status Plan() {
    std::map<int64_t, int64_t> by_output;
    for (int64_t i = 0; i < op_.actions_size(); ++i) {
      const pb::FileAction& a = op_.actions(i);
      if (a.output() < 0) continue;
      if (!by_output.emplace(a.output(), n_ + i).second) {
        return absl::InvalidArgumentError(StrCat("duplicate output ", a.output()));
      }
    }
    if (by_output.empty()) return absl::InvalidArgumentError("no outputs specified");
    for (int64_t o = 0; o < static_cast<int64_t>(by_output.size()); ++o) {
      auto it = by_output.find(o);
      if (it == by_output.end())
        return absl::InvalidArgumentError(StrCat("missing output index ", o));
      outputs_.push_back(it->second);
    }
    // Walk back from the outputs; count the users of each index.
    std::vector<int64_t> stack(outputs_.begin(), outputs_.end());
    while (!stack.empty()) {
      int64_t idx = stack.back();
      stack.pop_back();
      if (idx < n_ || !needed_.insert(idx).second) continue;
      if (idx - n_ >= op_.actions_size()) {
        return absl::InvalidArgumentError(StrCat("invalid input index ", idx));
      }
      const pb::FileAction& a = op_.actions(idx - n_);
      std::vector<int64_t> deps = {a.input(), a.secondaryinput()};
      if (const pb::ChownOpt* c = OwnerOf(a)) {
        if (c->has_user() && c->user().has_byname()) deps.push_back(c->user().byname().input());
        if (c->has_group() && c->group().has_byname()) deps.push_back(c->group().byname().input());
      }
      for (int64_t d : deps) {
        if (d < -1 || d >= n_ + op_.actions_size()) {
          return absl::InvalidArgumentError(StrCat("invalid input index ", d));
        }
        if (d >= n_ && d >= idx) return absl::InvalidArgumentError(StrCat("loop from index ", idx));
        if (d == -1) continue;
        users_[d]++;
        stack.push_back(d);
      }
    }
    for (int64_t idx : outputs_) {
      users_[idx]++;
      is_output_.insert(idx);
    }
    return absl::OkStatus();
  }

  // The writable tree for an action's primary input.
  absl::StatusOr<std::unique_ptr<WriteTree>> TakeWritable(int64_t idx) {
    if (idx == -1) return WriteTree::Prepare(worker_, nullptr, description_);
    if (idx < n_) return WriteTree::Prepare(worker_, inputs_[idx], description_);
    Slot& s = slots_[idx - n_];
    if (s.tree) return std::move(s.tree);
    return WriteTree::Prepare(worker_, s.ref, description_);
  }

  // A tree to read (copy source, passwd lookup); `holder` keeps a view alive.
  absl::StatusOr<const RootDir*> Readable(int64_t idx, std::unique_ptr<ReadTree>* holder) {
    if (idx >= n_) {
      Slot& s = slots_[idx - n_];
      if (s.tree) return &s.tree->root();
      KILN_ASSIGN_OR_RETURN(*holder, ReadTree::Open(worker_, s.ref));
    } else {
      KILN_ASSIGN_OR_RETURN(*holder, ReadTree::Open(worker_, idx < 0 ? ResultRef() : inputs_[idx]));
    }
    return &(*holder)->root();
  }

  absl::StatusOr<std::optional<FileOwner>> Owner(const pb::FileAction& a,
                                                 std::vector<std::unique_ptr<ReadTree>>* holders) {
    const pb::ChownOpt* c = OwnerOf(a);
    if (c == nullptr) return std::nullopt;
    const RootDir* user_root = nullptr;
    const RootDir* group_root = nullptr;
    if (c->has_user() && c->user().has_byname()) {
      holders->emplace_back();
      KILN_ASSIGN_OR_RETURN(user_root, Readable(c->user().byname().input(), &holders->back()));
    }
    if (c->has_group() && c->group().has_byname()) {
      holders->emplace_back();
      KILN_ASSIGN_OR_RETURN(group_root, Readable(c->group().byname().input(), &holders->back()));
    }
    return ResolveOwner(c, user_root, group_root);
  }

  absl::Status RunAction(int64_t i) {
    const pb::FileAction& a = op_.actions(i);
    std::vector<std::unique_ptr<ReadTree>> holders;
    KILN_ASSIGN_OR_RETURN(std::optional<FileOwner> owner, Owner(a, &holders));
    std::unique_ptr<ReadTree> src_holder;
    const RootDir* src = nullptr;
    if (a.has_copy()) {
      KILN_ASSIGN_OR_RETURN(src, Readable(a.secondaryinput(), &src_holder));
    }
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<WriteTree> tree, TakeWritable(a.input()));
    const RootDir& root = tree->root();
    switch (a.action_case()) {
      case pb::FileAction::kMkdir:
        KILN_RETURN_IF_ERROR(DoMkdir(root, a.mkdir(), owner));
        break;
      case pb::FileAction::kMkfile:
        KILN_RETURN_IF_ERROR(DoMkfile(root, a.mkfile(), owner));
        break;
      case pb::FileAction::kRm:
        KILN_RETURN_IF_ERROR(DoRm(root, a.rm()));
        break;
      case pb::FileAction::kCopy:
        KILN_RETURN_IF_ERROR(DoCopy(*src, root, a.copy(), owner, ctx_.cancel));
        break;
      case pb::FileAction::kSymlink:
        KILN_RETURN_IF_ERROR(DoSymlink(root, a.symlink(), owner));
        break;
      default:
        return absl::InvalidArgumentError("invalid file action type");
    }
    src_holder.reset();
    holders.clear();
    Slot& slot = slots_[i];
    if (users_[n_ + i] > 1 || is_output_.count(n_ + i)) {
      KILN_ASSIGN_OR_RETURN(slot.ref, tree->Commit());
    } else {
      slot.tree = std::move(tree);
    }
    return absl::OkStatus();
  }

  Worker& worker_;
  const pb::FileOp& op_;
  std::span<const ResultRef> inputs_;
  const OpContext& ctx_;
  std::string description_;
  const int64_t n_;
  std::vector<Slot> slots_;
  std::vector<int64_t> outputs_;
  std::set<int64_t> needed_;
  std::set<int64_t> is_output_;
  std::map<int64_t, int> users_;
};

class FileOp : public Op {
 public:
  FileOp(LlbOp op, OpEnv env) : llb_(std::move(op)), env_(env) {}

  absl::StatusOr<CacheMap> GetCacheMap(const OpContext&) override {
    return FileOpCacheMap(llb_.op.file(), llb_.op.inputs_size(), env_.worker);
  }

  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                              std::span<const ResultRef> inputs) override {
    ActionRunner runner(*env_.worker, llb_.op.file(), inputs, ctx, llb_.Name());
    return runner.Run();
  }

 private:
  LlbOp llb_;
  OpEnv env_;
};

}  // namespace

absl::StatusOr<CacheMap> FileOpCacheMap(const pb::FileOp& op, int num_inputs, Worker* worker) {
  SelectorMap selectors;
  std::set<int64_t> invalid;
  auto mark_invalid = [&](int64_t idx) {
    if (idx != -1) invalid.insert(idx);
  };
  std::vector<std::string> actions;
  std::vector<std::array<int64_t, 3>> indexes;
  for (const pb::FileAction& a : op.actions()) {
    std::string dt;
    switch (a.action_case()) {
      case pb::FileAction::kMkdir:
        mark_invalid(a.input());
        if (a.mkdir().has_owner()) ProcessOwner(a.mkdir().owner(), selectors);
        dt = llb::GoJson(a.mkdir());
        break;
      case pb::FileAction::kMkfile:
        mark_invalid(a.input());
        if (a.mkfile().has_owner()) ProcessOwner(a.mkfile().owner(), selectors);
        dt = llb::GoJson(a.mkfile());
        break;
      case pb::FileAction::kRm:
        mark_invalid(a.input());
        dt = llb::GoJson(a.rm());
        break;
      case pb::FileAction::kCopy: {
        pb::FileActionCopy p = a.copy();
        mark_invalid(a.input());
        if (p.has_owner()) ProcessOwner(p.owner(), selectors);
        if (a.secondaryinput() != -1 && a.secondaryinput() < num_inputs) {
          AddSelector(selectors, a.secondaryinput(), p.src(), p.allowwildcard(), p.followsymlink(),
                      {p.include_patterns().begin(), p.include_patterns().end()},
                      {p.exclude_patterns().begin(), p.exclude_patterns().end()},
                      {p.required_paths().begin(), p.required_paths().end()});
          p.set_src(BasePath(p.src()));
        }
        dt = llb::GoJson(p);
        break;
      }
      case pb::FileAction::kSymlink:
        mark_invalid(a.input());
        if (a.symlink().has_owner()) ProcessOwner(a.symlink().owner(), selectors);
        dt = llb::GoJson(a.symlink());
        break;
      default:
        return absl::InvalidArgumentError("invalid file action type");
    }
    actions.push_back(std::move(dt));
    indexes.push_back({a.input(), a.secondaryinput(), a.output()});
  }

  std::string json = StrCat("{\"Type\":\"", kFileCacheType, "\",\"Actions\":[");
  for (size_t i = 0; i < actions.size(); ++i) {
    if (i) json.push_back(',');
    StrAppend(&json, "\"", Base64Std(actions[i]), "\"");
  }
  json.push_back(']');
  if (!IsDefaultIndexes(indexes)) {
    json += ",\"indexes\":[";
    for (size_t i = 0; i < indexes.size(); ++i) {
      if (i) json.push_back(',');
      StrAppend(&json, "[", indexes[i][0], ",", indexes[i][1], ",", indexes[i][2], "]");
    }
    json.push_back(']');
  }
  json.push_back('}');

  CacheMap cm;
  cm.digest = Digest::Sha256Of(json);
  cm.deps.resize(num_inputs);
  for (auto& [idx, sels] : selectors) {
    if (invalid.count(idx) || idx < 0 || idx >= num_inputs) continue;
    std::vector<std::string> paths;
    for (const ContentSelector& s : sels) paths.push_back(s.path);
    std::sort(paths.begin(), paths.end(), std::greater<>());
    std::string joined;
    for (size_t i = 0; i < paths.size(); ++i) {
      if (i) joined.push_back('\0');
      joined += paths[i];
    }
    cm.deps[idx].selector = Digest::Sha256Of(joined);
    if (worker != nullptr)
      cm.deps[idx].content = MakeContentDigestFunc(worker, DedupeSelectors(sels));
  }
  return cm;
}

absl::StatusOr<std::unique_ptr<Op>> NewFileOp(const LlbOp& op, const OpEnv& env) {
  if (!op.op.has_file()) return absl::InvalidArgumentError("not a file op");
  if (env.worker == nullptr) return absl::FailedPreconditionError("file op needs a worker");
  return std::unique_ptr<Op>(new FileOp(op, env));
}

}  // namespace kiln::engine
