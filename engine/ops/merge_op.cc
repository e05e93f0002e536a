#include "engine/ops/merge_op.h"

#include <fcntl.h>

#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/copy_tree.h"
#include "engine/ops/copy_util.h"
#include "engine/ops/file_tree.h"
#include "engine/worker/worker.h"
#include "llb/dump.h"

namespace kiln::engine {
namespace {

constexpr char kMergeCacheType[] = "buildkit.merge.v0";

absl::Status RemoveChildren(int dirfd) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirSorted(dirfd));
  for (const std::string& n : names) KILN_RETURN_IF_ERROR(RemoveEntry(dirfd, n));
  return absl::OkStatus();
}

class OverlayApplier {
 public:
  OverlayApplier(const RootDir& dst, const CancelToken& cancel)
      : dst_(dst), cancel_(cancel), cloner_(dst, /*skip_whiteouts=*/true, cancel) {}

  // Applies the children of the source directory `src_dir` onto the destination directory
  // `dst_rel` (which exists).
  absl::Status ApplyChildren(int src_dir, const std::string& dst_rel) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirSorted(src_dir));
    KILN_ASSIGN_OR_RETURN(UniqueFd dst_dir, dst_.OpenResolved(dst_rel, O_RDONLY | O_DIRECTORY));
    for (const std::string& n : names) {
      KILN_RETURN_IF_ERROR(cancel_.Check());
      EntryRef src{src_dir, n};
      EntryRef dst{dst_dir.get(), n};
      const std::string rel = JoinRel(dst_rel, n);
      KILN_ASSIGN_OR_RETURN(struct stat st, StatEntry(src));
      if (IsWhiteout(st)) {
        KILN_RETURN_IF_ERROR(RemoveEntry(dst.dir, n));
        continue;
      }
      auto existing = StatEntry(dst);
      bool exists = existing.ok();
      if (S_ISDIR(st.st_mode)) {
        if (exists && !S_ISDIR(existing->st_mode)) {
          KILN_RETURN_IF_ERROR(RemoveEntry(dst.dir, n));
          exists = false;
        }
        if (!exists) {
          KILN_RETURN_IF_ERROR(cloner_.Clone(src, rel));
          continue;
        }
        KILN_ASSIGN_OR_RETURN(UniqueFd sub, OpenDirEntry(src));
        if (IsOpaqueDir(src)) {
          KILN_ASSIGN_OR_RETURN(UniqueFd dsub, OpenDirEntry(dst));
          KILN_RETURN_IF_ERROR(RemoveChildren(dsub.get()));
        }
        KILN_RETURN_IF_ERROR(ApplyChildren(sub.get(), rel));
        KILN_RETURN_IF_ERROR(cloner_.CopyMetadata(src, st, dst));
        continue;
      }
      if (exists) KILN_RETURN_IF_ERROR(RemoveEntry(dst.dir, n));
      KILN_RETURN_IF_ERROR(cloner_.Clone(src, rel));
    }
    return absl::OkStatus();
  }

 private:
  const RootDir& dst_;
  const CancelToken& cancel_;
  TreeCloner cloner_;
};

class MergeOp : public Op {
 public:
  MergeOp(LlbOp op, OpEnv env) : llb_(std::move(op)), env_(env) {}

  absl::StatusOr<CacheMap> GetCacheMap(const OpContext&) override {
    CacheMap cm;
    cm.digest = Digest::Sha256Of(StrCat("{\"Type\":\"", kMergeCacheType,
                                        "\",\"Merge\":", llb::GoJson(llb_.op.merge()), "}"));
    cm.deps.resize(llb_.op.inputs_size());
    return cm;
  }

  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                              std::span<const ResultRef> inputs) override {
    std::vector<ResultRef> refs;
    for (const pb::MergeInput& in : llb_.op.merge().inputs()) {
      if (in.input() < 0 || in.input() >= static_cast<int64_t>(inputs.size())) {
        return absl::InvalidArgumentError(StrCat("merge: invalid input index ", in.input()));
      }
      const ResultRef& r = inputs[in.input()];
      if (r && !SnapshotKeyOf(r).empty()) refs.push_back(r);
    }
    Worker& w = *env_.worker;
    if (refs.empty()) return std::vector<ResultRef>{w.EmptyResult()};
    if (refs.size() == 1) return std::vector<ResultRef>{refs[0]};
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<WriteTree> out,
                          WriteTree::Prepare(w, refs[0], llb_.Name()));
    for (size_t i = 1; i < refs.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(std::unique_ptr<ReadTree> in, ReadTree::Open(w, refs[i]));
      KILN_RETURN_IF_ERROR_CTX(ApplyOverlayTree(in->root(), out->root(), ctx.cancel),
                               StrCat("merge input ", i));
    }
    KILN_ASSIGN_OR_RETURN(ResultRef r, out->Commit());
    return std::vector<ResultRef>{r};
  }

 private:
  LlbOp llb_;
  OpEnv env_;
};

}  // namespace

absl::Status ApplyOverlayTree(const RootDir& src, const RootDir& dst, const CancelToken& cancel) {
  OverlayApplier applier(dst, cancel);
  return applier.ApplyChildren(src.fd(), "");
}

absl::StatusOr<std::unique_ptr<Op>> NewMergeOp(const LlbOp& op, const OpEnv& env) {
  if (!op.op.has_merge()) return absl::InvalidArgumentError("not a merge op");
  if (env.worker == nullptr) return absl::FailedPreconditionError("merge op needs a worker");
  return std::unique_ptr<Op>(new MergeOp(op, env));
}

}  // namespace kiln::engine
