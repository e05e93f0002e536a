// kilnctl image inspect|copy|push|pull: images in registries.
//
//   kilnctl image inspect [--raw|--config] [--platform P] REF
//   kilnctl image copy [--platform P] SRC DST          (registry to registry, mounts within one)
//   kilnctl image push NAME [DST]                      (from the local image store)
//   kilnctl image pull [--platform P] REF              (into the local content and image store)
//
// Credentials: the --registry-auth / --registry-token flags, then ~/.docker/config.json
// (registry_flags.cc).
#include <cstdio>
#include <mutex>

#include "base/fs.h"
#include "base/reference.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/exporter/content_blob_provider.h"
#include "engine/ops/image_resolver.h"
#include "engine/worker/distribution_source.h"
#include "engine/worker/worker.h"
#include "nlohmann/json.hpp"
#include "registry/credentials.h"
#include "registry/registry.h"
#include "snapshotter/content_store.h"
#include "tools/kilnctl/commands.h"

namespace kiln::tools::kilnctl {
namespace {

using Json = nlohmann::json;

// Flags shared by the remote commands.
struct RemoteFlags {
  std::vector<std::string> auth;
  std::vector<std::string> tokens;
  std::string platform;
};

// A registry client for one command: plain HTTP for --insecure-registry hosts, the flags'
// credentials before the Docker config's.
absl::StatusOr<std::unique_ptr<registry::Registry>> OpenRegistry(const Context& ctx,
                                                                 const RemoteFlags& f) {
  registry::RegistryOptions options;
  for (const std::string& host : ctx.insecure_registries) options.hosts[host].plain_http = true;
  KILN_ASSIGN_OR_RETURN(auto creds, RequestCredentials(ctx, f.auth, f.tokens));
  return std::make_unique<registry::Registry>(options, std::move(creds));
}

absl::StatusOr<std::optional<oci::Platform>> FlagPlatform(const RemoteFlags& f) {
  if (f.platform.empty()) return std::nullopt;
  KILN_ASSIGN_OR_RETURN(oci::Platform p, oci::ParsePlatform(f.platform));
  return p;
}

bool IsIndex(std::string_view media_type) {
  return media_type == oci::kMediaTypeImageIndex || media_type == oci::kMediaTypeDockerManifestList;
}

// Transfer lines on stderr, one per blob outcome.
std::function<void(const registry::BlobProgress&)> BlobLog() {
  auto mu = std::make_shared<std::mutex>();
  return [mu](const registry::BlobProgress& p) {
    const char* what = nullptr;
    switch (p.phase) {
      case registry::BlobProgress::Phase::kDone:
        what = "done";
        break;
      case registry::BlobProgress::Phase::kMounted:
        what = "mounted";
        break;
      case registry::BlobProgress::Phase::kSkipped:
        what = "exists";
        break;
      case registry::BlobProgress::Phase::kRetrying:
        what = "retrying";
        break;
      default:
        return;
    }
    std::lock_guard<std::mutex> lock(*mu);
    std::fprintf(stderr, "%s %s: %s\n", p.repository.c_str(), p.digest.str().c_str(), what);
  };
}

// --- inspect ------------------------------------------------------------------------------------

struct InspectFlags : RemoteFlags {
  bool raw = false;
  bool config = false;
  std::string ref;
};

Json PlatformJson(const std::optional<oci::Platform>& p) {
  if (!p) return nullptr;
  return oci::FormatPlatform(*p);
}

Json StringList(const std::optional<std::vector<std::string>>& v) {
  if (!v) return nullptr;
  return *v;
}

absl::Status RunInspect(const Context& ctx, const InspectFlags& f) {
  KILN_ASSIGN_OR_RETURN(ImageReference ref, ParseNormalizedReference(f.ref));
  if (ref.NameOnly()) ref = ref.WithDefaultTag();
  KILN_ASSIGN_OR_RETURN(auto platform, FlagPlatform(f));
  KILN_ASSIGN_OR_RETURN(auto reg, OpenRegistry(ctx, f));
  registry::CallOptions call;
  KILN_ASSIGN_OR_RETURN(registry::FetchedManifest top, reg->FetchManifest(ref, call));
  if (f.raw) {
    std::fwrite(top.bytes.data(), 1, top.bytes.size(), stdout);
    return absl::OkStatus();
  }
  Json out;
  out["Name"] = ref.Name();
  out["Tag"] = ref.tag;
  out["Digest"] = top.digest.str();
  out["MediaType"] = top.media_type;
  if (IsIndex(top.media_type)) {
    KILN_ASSIGN_OR_RETURN(oci::Index index, oci::DecodeIndex(top.bytes));
    Json list = Json::array();
    for (const oci::Descriptor& m : index.manifests) {
      list.push_back({{"Digest", m.digest.str()},
                      {"MediaType", m.media_type},
                      {"Size", m.size},
                      {"Platform", PlatformJson(m.platform)}});
    }
    out["Manifests"] = std::move(list);
  }
  auto resolved = reg->Resolve(ref, platform, call);
  if (!resolved.ok()) {
    if (IsIndex(top.media_type) && absl::IsNotFound(resolved.status())) {
      // An index without this platform is still worth describing.
      std::printf("%s\n", out.dump(4).c_str());
      return absl::OkStatus();
    }
    return resolved.status();
  }
  if (f.config) {
    std::fwrite(resolved->config.data(), 1, resolved->config.size(), stdout);
    return absl::OkStatus();
  }
  KILN_ASSIGN_OR_RETURN(oci::Manifest manifest, oci::DecodeManifest(resolved->manifest));
  KILN_ASSIGN_OR_RETURN(oci::Image image, oci::DecodeImage(resolved->config));
  if (IsIndex(top.media_type)) {
    out["Manifest"] = {{"Digest", resolved->digest.str()}, {"MediaType", resolved->media_type}};
  }
  out["Config"] = {{"Digest", resolved->config_descriptor.digest.str()},
                   {"MediaType", resolved->config_descriptor.media_type}};
  out["Created"] = image.created;
  out["Architecture"] = image.platform.architecture;
  out["Os"] = image.platform.os;
  if (!image.platform.variant.empty()) out["Variant"] = image.platform.variant;
  out["Author"] = image.author;
  out["Env"] = image.config.env;
  out["Entrypoint"] = StringList(image.config.entrypoint);
  out["Cmd"] = StringList(image.config.cmd);
  out["WorkingDir"] = image.config.working_dir;
  out["User"] = image.config.user;
  out["Labels"] = image.config.labels;
  Json layers = Json::array(), layers_data = Json::array();
  for (const oci::Descriptor& l : manifest.layers) {
    layers.push_back(l.digest.str());
    layers_data.push_back(
        {{"MIMEType", l.media_type}, {"Digest", l.digest.str()}, {"Size", l.size}});
  }
  out["Layers"] = std::move(layers);
  out["LayersData"] = std::move(layers_data);
  std::printf("%s\n", out.dump(4).c_str());
  return absl::OkStatus();
}

// --- copy ---------------------------------------------------------------------------------------

struct CopyFlags : RemoteFlags {
  std::string src;
  std::string dst;
};

void PrintStats(const char* verb, const std::string& dst, const registry::PushResult& r) {
  std::printf("%s %s@%s (blobs: %d uploaded, %d mounted, %d already there)\n", verb, dst.c_str(),
              r.digest.str().c_str(), r.stats.uploaded, r.stats.mounted,
              r.stats.skipped + r.stats.deduped);
}

absl::Status RunCopy(const Context& ctx, const CopyFlags& f) {
  KILN_ASSIGN_OR_RETURN(ImageReference src, ParseNormalizedReference(f.src));
  if (src.NameOnly()) src = src.WithDefaultTag();
  KILN_ASSIGN_OR_RETURN(ImageReference dst, ParseNormalizedReference(f.dst));
  if (dst.NameOnly()) {
    // The source's tag, or its digest when it has none.
    if (!src.tag.empty()) {
      dst.tag = src.tag;
    } else {
      dst.digest = src.digest;
    }
  }
  KILN_ASSIGN_OR_RETURN(auto platform, FlagPlatform(f));
  KILN_ASSIGN_OR_RETURN(auto reg, OpenRegistry(ctx, f));
  registry::CallOptions call;
  call.progress = BlobLog();
  auto copied = reg->Copy(src, dst, platform, call);
  if (!copied.ok()) {
    return Annotate(copied.status(), StrCat("copy ", src.String(), " to ", dst.String()));
  }
  PrintStats("copied to", dst.Name(), *copied);
  return absl::OkStatus();
}

// --- push / pull --------------------------------------------------------------------------------

struct PushFlags : RemoteFlags {
  std::string name;
  std::string dst;
};

absl::Status AddManifestBlobs(const std::string& bytes, std::vector<oci::Descriptor>& blobs) {
  KILN_ASSIGN_OR_RETURN(oci::Manifest m, oci::DecodeManifest(bytes));
  blobs.push_back(m.config);
  for (const oci::Descriptor& l : m.layers) blobs.push_back(l);
  return absl::OkStatus();
}

absl::Status RunPush(const Context& ctx, const PushFlags& f) {
  KILN_ASSIGN_OR_RETURN(std::string name, engine::ImageStoreName(f.name));
  KILN_ASSIGN_OR_RETURN(ImageReference dst, ParseNormalizedReference(f.dst.empty() ? name : f.dst));
  if (dst.NameOnly()) dst = dst.WithDefaultTag();
  engine::WorkerOptions wo;
  wo.root = ctx.root;
  KILN_ASSIGN_OR_RETURN(auto worker, engine::Worker::Open(wo));
  snapshotter::ContentStore& store = worker->content();
  auto record = worker->images().Get(name);
  if (!record.ok()) {
    return Annotate(record.status(),
                    StrCat("push ", Quote(name), ": not in the local image store"));
  }
  registry::PushRequest req;
  req.targets.push_back(dst);
  KILN_ASSIGN_OR_RETURN(req.manifest.bytes, snapshotter::ReadBlob(store, record->target.digest));
  req.manifest.media_type = record->target.media_type;
  if (IsIndex(record->target.media_type)) {
    KILN_ASSIGN_OR_RETURN(oci::Index index, oci::DecodeIndex(req.manifest.bytes));
    for (const oci::Descriptor& child : index.manifests) {
      auto bytes = snapshotter::ReadBlob(store, child.digest);
      if (!bytes.ok()) {
        return Annotate(bytes.status(),
                        StrCat("push ", Quote(name), ": the index's manifest for ",
                               child.platform ? oci::FormatPlatform(*child.platform) : "?",
                               " is not stored locally"));
      }
      KILN_RETURN_IF_ERROR(AddManifestBlobs(*bytes, req.blobs));
      req.children.push_back({*std::move(bytes), child.media_type});
    }
  } else {
    KILN_RETURN_IF_ERROR(AddManifestBlobs(req.manifest.bytes, req.blobs));
  }
  for (const oci::Descriptor& b : req.blobs) {
    for (ImageReference& src : engine::DistributionSources(store, b.digest)) {
      if (src.domain == dst.domain) req.mount_sources[b.digest].push_back(std::move(src));
    }
  }
  engine::ContentBlobProvider provider(store);
  req.provider = &provider;
  KILN_ASSIGN_OR_RETURN(auto reg, OpenRegistry(ctx, f));
  registry::CallOptions call;
  call.progress = BlobLog();
  auto pushed = reg->PushImage(req, call);
  if (!pushed.ok()) {
    return Annotate(pushed.status(), StrCat("push ", Quote(name), " to ", dst.String()));
  }
  // Best effort: a missing label only costs an upload next time.
  for (const oci::Descriptor& b : req.blobs)
    (void)engine::AddDistributionSource(store, b.digest, dst);
  PrintStats("pushed", dst.String(), *pushed);
  return absl::OkStatus();
}

struct PullFlags : RemoteFlags {
  std::string ref;
};

absl::Status RunPull(const Context& ctx, const PullFlags& f) {
  KILN_ASSIGN_OR_RETURN(ImageReference ref, ParseNormalizedReference(f.ref));
  if (ref.NameOnly()) ref = ref.WithDefaultTag();
  KILN_ASSIGN_OR_RETURN(auto platform, FlagPlatform(f));
  KILN_ASSIGN_OR_RETURN(auto reg, OpenRegistry(ctx, f));
  engine::WorkerOptions wo;
  wo.root = ctx.root;
  KILN_ASSIGN_OR_RETURN(auto worker, engine::Worker::Open(wo));
  engine::ImageResolver resolver(worker.get(), reg.get());
  engine::ImageResolveOptions options;
  options.progress = BlobLog();
  KILN_ASSIGN_OR_RETURN(engine::ImageResolution image,
                        resolver.Resolve(ref, platform.value_or(oci::HostPlatform()),
                                         engine::ImageResolveMode::kPull, options));
  std::vector<oci::Descriptor> blobs = image.manifest.layers;
  blobs.push_back(image.manifest.config);
  KILN_RETURN_IF_ERROR(resolver.FetchBlobs(ref, blobs, options));
  // Every blob a manifest of `ref` lists is in that repository, downloaded now or not (a
  // digest-pinned image found locally proves nothing about the registry).
  if (image.origin == engine::ImageResolution::Origin::kRegistry) {
    for (const oci::Descriptor& b : blobs) {
      (void)engine::AddDistributionSource(worker->content(), b.digest, ref);
    }
  }
  KILN_ASSIGN_OR_RETURN(std::string name, engine::ImageStoreName(ref.String()));
  KILN_RETURN_IF_ERROR(worker->images().Put(name, image.target));
  std::printf("%s %s\n", name.c_str(), image.target.digest.str().c_str());
  return absl::OkStatus();
}

void AddRemoteFlags(CLI::App& cmd, RemoteFlags& f, bool platform) {
  AddRegistryCredentialFlags(cmd, f.auth, f.tokens);
  if (platform) {
    cmd.add_option("--platform", f.platform,
                   "Platform to pick from an index, e.g. linux/arm64 (default: this machine's)");
  }
}

}  // namespace

void AddRemoteImageCommands(CLI::App& app, Context& ctx) {
  CLI::App* image = app.get_subcommand("image");
  image->description("Manage images in the local store and in registries");

  auto in = std::make_shared<InspectFlags>();
  CLI::App* inspect = image->add_subcommand(
      "inspect",
      "Describe an image in a registry: digest, media type, platforms of an index, config "
      "summary (JSON, like skopeo inspect)");
  AddRemoteFlags(*inspect, *in, true);
  inspect->add_flag("--raw", in->raw, "Print the manifest or index exactly as served");
  inspect->add_flag("--config", in->config, "Print the platform's image config blob");
  inspect->add_option("ref", in->ref, "Image reference, e.g. ghcr.io/o/app:1")->required();
  inspect->callback([&ctx, in] { Report(ctx, RunInspect(ctx, *in)); });

  auto cp = std::make_shared<CopyFlags>();
  CLI::App* copy = image->add_subcommand(
      "copy",
      "Copy an image between registries (blobs are mounted within one registry); the whole "
      "index unless --platform");
  AddRemoteFlags(*copy, *cp, true);
  copy->add_option("src", cp->src, "Source reference")->required();
  copy->add_option("dst", cp->dst, "Destination reference (default tag: the source's)")->required();
  copy->callback([&ctx, cp] { Report(ctx, RunCopy(ctx, *cp)); });

  auto ps = std::make_shared<PushFlags>();
  CLI::App* push = image->add_subcommand("push", "Push an image of the local store to a registry");
  AddRemoteFlags(*push, *ps, false);
  push->add_option("name", ps->name, "Image name in the local store")->required();
  push->add_option("dst", ps->dst, "Destination reference (default: the name)");
  push->callback([&ctx, ps] { Report(ctx, RunPush(ctx, *ps)); });

  auto pl = std::make_shared<PullFlags>();
  CLI::App* pull = image->add_subcommand(
      "pull", "Pull an image into the local store (a FROM of it then needs no registry)");
  AddRemoteFlags(*pull, *pl, true);
  pull->add_option("ref", pl->ref, "Image reference")->required();
  pull->callback([&ctx, pl] { Report(ctx, RunPull(ctx, *pl)); });
}

}  // namespace kiln::tools::kilnctl
