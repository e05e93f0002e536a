#include "engine/ops/file_tree.h"

#include "base/status.h"
#include "base/strings.h"
#include "engine/worker/worker.h"

namespace kiln::engine {

absl::StatusOr<std::unique_ptr<MountedTree>> MountedTree::Mount(
    Worker& worker, const std::vector<snapshotter::Mount>& mounts) {
  std::unique_ptr<MountedTree> t(new MountedTree());
  if (mounts.size() == 1 && mounts[0].type == "bind" && mounts[0].target.empty()) {
    KILN_ASSIGN_OR_RETURN(t->root_, RootDir::Open(mounts[0].source));
    return t;
  }
  KILN_ASSIGN_OR_RETURN(t->dir_, TempDir::Create("tree-", worker.TempRoot()));
  if (!mounts.empty()) {
    KILN_ASSIGN_OR_RETURN(t->mount_, snapshotter::ScopedMount::MountAll(mounts, t->dir_.path()));
  }
  KILN_ASSIGN_OR_RETURN(t->root_, RootDir::Open(t->dir_.path()));
  return t;
}

absl::Status MountedTree::Unmount() {
  root_ = RootDir();
  return mount_.Unmount();
}

absl::StatusOr<std::unique_ptr<ReadTree>> ReadTree::Open(Worker& worker, const ResultRef& result) {
  std::unique_ptr<ReadTree> t(new ReadTree());
  KILN_ASSIGN_OR_RETURN(t->view_, worker.View(result));
  KILN_ASSIGN_OR_RETURN(t->tree_, MountedTree::Mount(worker, t->view_.mounts()));
  return t;
}

absl::StatusOr<std::unique_ptr<WriteTree>> WriteTree::Prepare(Worker& worker,
                                                              const ResultRef& parent,
                                                              std::string_view description) {
  std::unique_ptr<WriteTree> t(new WriteTree(worker));
  KILN_ASSIGN_OR_RETURN(t->active_, worker.Prepare(parent, description));
  KILN_ASSIGN_OR_RETURN(t->tree_, MountedTree::Mount(worker, t->active_.mounts()));
  return t;
}

absl::StatusOr<ResultRef> WriteTree::Commit() {
  KILN_RETURN_IF_ERROR(tree_->Unmount());
  tree_.reset();
  return worker_->Commit(std::move(active_));
}

}  // namespace kiln::engine
