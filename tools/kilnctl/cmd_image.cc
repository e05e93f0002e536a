// kilnctl image import / ls: base images without a registry, and what the local store holds.
//
//   kilnctl image import --rootfs DIR [--env K=V] [--cmd ARG]... busybox:latest
//   kilnctl image import --oci-layout DIR [--ref TAG] NAME
#include <cstdio>

#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/image_resolver.h"
#include "engine/worker/worker.h"
#include "tools/kilnctl/commands.h"

namespace kiln::tools::kilnctl {
namespace {

struct ImportFlags {
  std::string rootfs;
  std::string layout;
  std::string layout_ref;
  std::string name;
  std::vector<std::string> env;
  std::vector<std::string> cmd;
  std::vector<std::string> entrypoint;
  std::string workdir;
  std::string user;
};

absl::Status RunImport(const Context& ctx, const ImportFlags& f) {
  if (f.rootfs.empty() == f.layout.empty()) {
    return absl::InvalidArgumentError("image import: give exactly one of --rootfs or --oci-layout");
  }
  engine::WorkerOptions wo;
  wo.root = ctx.root;
  KILN_ASSIGN_OR_RETURN(auto worker, engine::Worker::Open(wo));
  engine::ImportedImageInfo info;
  if (!f.rootfs.empty()) {
    snapshotter::RootfsImportOptions opts;
    opts.config.env = f.env;
    if (opts.config.env.empty()) {
      opts.config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    }
    if (!f.cmd.empty()) opts.config.cmd = f.cmd;
    if (!f.entrypoint.empty()) opts.config.entrypoint = f.entrypoint;
    opts.config.working_dir = f.workdir;
    opts.config.user = f.user;
    KILN_ASSIGN_OR_RETURN(info, engine::ImportRootfsImage(*worker, f.rootfs, f.name, opts));
  } else {
    KILN_ASSIGN_OR_RETURN(info,
                          engine::ImportOciLayoutImage(*worker, f.layout, f.name, f.layout_ref));
  }
  std::printf("%s %s\n", info.name.c_str(), info.target.digest.str().c_str());
  return absl::OkStatus();
}

absl::Status RunList(const Context& ctx) {
  engine::WorkerOptions wo;
  wo.root = ctx.root;
  KILN_ASSIGN_OR_RETURN(auto worker, engine::Worker::Open(wo));
  KILN_ASSIGN_OR_RETURN(auto images, worker->images().List());
  std::printf("%-50s %-73s %s\n", "NAME", "DIGEST", "UPDATED");
  for (const auto& img : images) {
    std::printf("%-50s %-73s %s\n", img.name.c_str(), img.target.digest.str().c_str(),
                img.updated.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

void AddImageCommands(CLI::App& app, Context& ctx) {
  CLI::App* image = app.add_subcommand("image", "Manage images in the local store");
  image->require_subcommand(1);

  auto f = std::make_shared<ImportFlags>();
  CLI::App* imp = image->add_subcommand("import", "Import a root filesystem or an OCI layout");
  imp->add_option("--rootfs", f->rootfs, "Root filesystem directory (becomes one layer)");
  imp->add_option("--oci-layout", f->layout, "OCI image layout directory");
  imp->add_option("--ref", f->layout_ref, "Entry of the layout's index.json (ref.name)");
  imp->add_option("--env", f->env, "Config Env entry K=V (rootfs; default PATH)");
  imp->add_option("--cmd", f->cmd, "Config Cmd argument (rootfs; repeat for each)");
  imp->add_option("--entrypoint", f->entrypoint, "Config Entrypoint argument (rootfs)");
  imp->add_option("--workdir", f->workdir, "Config WorkingDir (rootfs)");
  imp->add_option("--user", f->user, "Config User (rootfs)");
  imp->add_option("name", f->name, "Image name, e.g. busybox:latest")->required();
  imp->callback([&ctx, f] { Report(ctx, RunImport(ctx, *f)); });

  CLI::App* ls = image->add_subcommand("ls", "List images in the local store");
  ls->callback([&ctx] { Report(ctx, RunList(ctx)); });
}

}  // namespace kiln::tools::kilnctl
