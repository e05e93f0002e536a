#include "engine/exporter/exporter.h"

#include <chrono>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/reference.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/exporter/archive.h"
#include "engine/exporter/content_blob_provider.h"
#include "engine/exporter/go_json.h"
#include "engine/exporter/image_writer.h"
#include "engine/exporter/tree_tar.h"
#include "engine/worker/distribution_source.h"
#include "snapshotter/image_import.h"

namespace kiln::engine {
namespace {

constexpr char kCreatedAnnotation[] = "org.opencontainers.image.created";

// One status line around a step, as BuildKit's progress.OneOff.
class Step {
 public:
  Step(const ExportInput& in, std::string name) : in_(in) {
    update_.id = name;
    update_.name = std::move(name);
    update_.started = Clock::now();
    update_.timestamp = *update_.started;
    if (in_.progress) in_.progress(update_);
  }
  absl::Status Done(absl::Status s) {
    update_.completed = Clock::now();
    update_.timestamp = *update_.completed;
    if (in_.progress) in_.progress(update_);
    return s;
  }

 private:
  const ExportInput& in_;
  StatusUpdate update_;
};

std::vector<std::string> SplitNames(const std::string& names) {
  std::vector<std::string> out;
  if (names.empty()) return out;
  for (absl::string_view n : absl::StrSplit(names, ',')) out.emplace_back(n.data(), n.size());
  return out;
}

std::string DescriptorResponse(const oci::Descriptor& d) {
  return absl::Base64Escape(oci::EncodeDescriptor(d));
}

// What the image, oci and docker exporters share: the committed image from the options.
absl::StatusOr<CommittedImage> Commit(
    Worker& worker, const ExportInput& in, const ImageExportOptions& o, int parallelism,
    const CancelToken& cancel, std::function<void(const ExportedLayer&)> on_layer = nullptr) {
  if (o.annotations.index) {
    return absl::InvalidArgumentError("index annotations not supported for single platform export");
  }
  for (const auto& [p, set] : o.annotations.by_platform) {
    if (!in.platform || oci::FormatPlatform(*in.platform) != p) {
      return absl::InvalidArgumentError(
          StrCat("invalid annotation: no platform ", p, " found in source"));
    }
  }
  ImageCommitOptions co;
  co.layers.compression = o.compression;
  co.layers.level = o.level;
  co.layers.force = o.force_compression;
  co.layers.parallelism = parallelism;
  co.layers.cancel = cancel;
  co.layers.on_layer = std::move(on_layer);
  co.oci_types = o.oci_types;
  co.epoch = o.epoch ? o.epoch : in.source_date_epoch;
  if (o.rewrite_timestamp) co.layers.rewrite_epoch = co.epoch;
  co.platform = in.platform;
  AnnotationOptions::Set a = o.annotations.For(in.platform);
  co.manifest_annotations = a.manifest;
  co.descriptor_annotations = a.manifest_descriptor;
  Step layers(in, "exporting layers");
  auto image = CommitImage(worker, in.result, in.image_config, co);
  KILN_RETURN_IF_ERROR(layers.Done(image.status()));
  Step manifest(in, StrCat("exporting manifest ", image->manifest.digest.str()));
  (void)manifest.Done(absl::OkStatus());
  Step config(in, StrCat("exporting config ", image->config.digest.str()));
  (void)config.Done(absl::OkStatus());
  return image;
}

// Uploads the layers an export computes while the others are still being diffed and
// compressed, so compression and hashing overlap with the upload.  PushImage later finds them
// present, or waits for an upload still running (the Registry deduplicates in-flight blobs), and
// remains what decides: an early upload that failed is simply done again there, and no manifest
// goes up before every blob is present.  Only new layers go early: reused ones (a base image's)
// may be mountable from their source repository, which only PushImage is told.
class EarlyLayerPush {
 public:
  EarlyLayerPush(registry::Registry& reg, ImageReference repo, snapshotter::ContentStore& store,
                 registry::CallOptions call)
      : reg_(reg), repo_(std::move(repo)), provider_(store), stop_(call.cancel), call_(call) {
    call_.cancel = stop_.token();
  }
  // Cancels uploads still running and waits for them.
  ~EarlyLayerPush() {
    stop_.Cancel("the export ended before this early upload");
    Wait();
  }

  // Thread-safe; called from the export's threads.
  void Start(const ExportedLayer& layer) {
    if (layer.source == ExportedLayer::Source::kReused) return;
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back(
        [this, blob = layer.blob] { (void)reg_.PushBlob(repo_, blob, provider_, call_); });
  }

  void Wait() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

 private:
  registry::Registry& reg_;
  const ImageReference repo_;
  ContentBlobProvider provider_;
  CancelSource stop_;
  registry::CallOptions call_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

std::string ResolveName(const ImageExportOptions& o, const ExportInput& in) {
  return o.name == "*" ? in.image_name : o.name;
}

class ImageExporter : public Exporter {
 public:
  ImageExporter(ImageExportOptions o, ExporterEnv env) : o_(std::move(o)), env_(env) {}
  std::string Name() const override { return "exporting to image"; }

  absl::StatusOr<ExportResponse> Export(const ExportInput& in, const ExportTarget&,
                                        const CancelToken& cancel) override {
    std::unique_ptr<EarlyLayerPush> early;
    std::function<void(const ExportedLayer&)> on_layer;
    if (o_.push) {
      KILN_ASSIGN_OR_RETURN(early, StartEarlyPush(in, cancel));
      if (early) on_layer = [e = early.get()](const ExportedLayer& l) { e->Start(l); };
    }
    KILN_ASSIGN_OR_RETURN(CommittedImage image,
                          Commit(*env_.worker, in, o_, env_.layer_parallelism, cancel, on_layer));
    std::string names = ResolveName(o_, in);
    bool canonical = o_.name_canonical;
    if (names.empty() && !o_.dangling_prefix.empty()) {
      names = StrCat(o_.dangling_prefix, "@", image.manifest.digest.str());
      canonical = false;
    }
    ExportResponse resp;
    std::vector<std::string> targets = SplitNames(names);
    if (o_.store) {
      for (const std::string& name : targets) {
        KILN_RETURN_IF_ERROR(Store(in, image, name, canonical));
      }
    }
    if (o_.push && !targets.empty()) KILN_RETURN_IF_ERROR(Push(in, image, targets, cancel));
    if (early) early->Wait();
    if (!names.empty()) resp[kExporterImageName] = names;
    resp[kExporterImageDigest] = image.manifest.digest.str();
    resp[kExporterImageConfigDigest] = image.config.digest.str();
    resp[kExporterImageDescriptor] = DescriptorResponse(image.manifest);
    return resp;
  }

 private:
  absl::Status Store(const ExportInput& in, const CommittedImage& image, const std::string& name,
                     bool canonical) {
    Step step(in, StrCat("naming to ", name));
    auto ref = ParseNormalizedReference(name);
    if (!ref.ok()) return step.Done(Annotate(ref.status(), StrCat("failed to parse ", name)));
    std::vector<std::string> keys{ref->WithDefaultTag().String()};
    if (canonical) keys.push_back(ref->WithDigest(image.manifest.digest).String());
    for (const std::string& key : keys) {
      absl::Status s = env_.worker->images().Put(key, image.manifest);
      if (!s.ok()) return step.Done(s);
    }
    KILN_RETURN_IF_ERROR(step.Done(absl::OkStatus()));
    if (o_.unpack) KILN_RETURN_IF_ERROR(Unpack(in, image, keys.front()));
    return absl::OkStatus();
  }

  // Unpacks into chainID-keyed snapshots (BuildKit's unpack=true for the containerd worker).
  absl::Status Unpack(const ExportInput& in, const CommittedImage& image, const std::string& name) {
    Step step(in, StrCat("unpacking to ", name));
    snapshotter::ImportedImage imported;
    imported.manifest_digest = image.manifest.digest;
    imported.config_digest = image.config.digest;
    auto manifest = oci::DecodeManifest(image.manifest_json);
    if (!manifest.ok()) return step.Done(manifest.status());
    imported.manifest = *manifest;
    auto config = oci::DecodeImage(image.config_json);
    if (!config.ok()) return step.Done(config.status());
    imported.config = *config;
    return step.Done(
        snapshotter::Unpack(env_.worker->content(), env_.worker->snapshots(), imported).status());
  }

  // The early uploads for the first name to push to, or null when nothing is to be pushed (an
  // image whose name comes from its digest); bad names are left for Push() to report.
  absl::StatusOr<std::unique_ptr<EarlyLayerPush>> StartEarlyPush(const ExportInput& in,
                                                                 const CancelToken& cancel) {
    std::vector<std::string> names = SplitNames(ResolveName(o_, in));
    if (names.empty()) return nullptr;
    std::vector<ImageReference> refs;
    for (const std::string& name : names) {
      auto ref = ParseNormalizedReference(name);
      if (!ref.ok()) return nullptr;
      refs.push_back(*std::move(ref));
    }
    KILN_ASSIGN_OR_RETURN(registry::Registry * reg, Client(in, refs));
    registry::CallOptions call;
    call.cancel = cancel;
    call.credentials = in.credentials;
    return std::make_unique<EarlyLayerPush>(*reg, refs.front(), env_.worker->content(), call);
  }

  // The shared client, or with registry.insecure one of this exporter's own that speaks plain
  // HTTP to the targets' hosts (BuildKit v0.11's PlainHTTP), so the shared one's settings stay
  // as they are.
  absl::StatusOr<registry::Registry*> Client(const ExportInput& in,
                                             const std::vector<ImageReference>& targets) {
    if (!o_.insecure) {
      if (env_.registry == nullptr) {
        return absl::FailedPreconditionError("push: no registry client configured");
      }
      return env_.registry;
    }
    std::lock_guard<std::mutex> lock(insecure_mu_);
    if (insecure_ == nullptr) {
      registry::RegistryOptions options =
          env_.registry_options ? *env_.registry_options : registry::RegistryOptions();
      for (const ImageReference& t : targets) options.hosts[t.domain].plain_http = true;
      insecure_ = std::make_unique<registry::Registry>(
          options, in.credentials ? in.credentials : env_.registry_credentials);
    }
    return insecure_.get();
  }

  absl::Status Push(const ExportInput& in, const CommittedImage& image,
                    const std::vector<std::string>& names, const CancelToken& cancel) {
    registry::PushRequest req;
    for (const std::string& name : names) {
      auto ref = ParseNormalizedReference(name);
      if (!ref.ok()) return Annotate(ref.status(), StrCat("failed to push ", name));
      ImageReference target = *ref;
      if (o_.push_by_digest) {
        target.tag.clear();
        target.digest = image.manifest.digest;
      } else if (target.NameOnly()) {
        target = target.WithDefaultTag();
      }
      req.targets.push_back(std::move(target));
    }
    KILN_ASSIGN_OR_RETURN(registry::Registry * reg, Client(in, req.targets));
    req.manifest.bytes = image.manifest_json;
    req.manifest.media_type = image.manifest.media_type;
    req.blobs.push_back(image.config);
    for (const auto& l : image.layers) req.blobs.push_back(l.blob);
    AddMountSources(image, &req);
    ContentBlobProvider provider(env_.worker->content());
    req.provider = &provider;
    registry::CallOptions call;
    call.cancel = cancel;
    call.credentials = in.credentials;
    Step step(in, StrCat("pushing ", absl::StrJoin(names, ",")));
    auto pushed = reg->PushImage(req, call);
    if (!pushed.ok()) {
      return step.Done(Annotate(pushed.status(), StrCat("failed to push ", names.front())));
    }
    // Where the blobs now live, so a later push to another repository of that registry mounts
    // them, even from another process (BuildKit's updateDistributionSourceHandler).  Best
    // effort: a missing label only costs an upload.
    for (const ImageReference& target : req.targets) {
      for (const oci::Descriptor& blob : req.blobs) {
        (void)AddDistributionSource(env_.worker->content(), blob.digest, target);
      }
    }
    return step.Done(absl::OkStatus());
  }

  // Blobs pulled from (or pushed to) a registry carry containerd's distribution-source label
  // (distribution_source.h): a push to that registry mounts them from there instead of
  // uploading.
  void AddMountSources(const CommittedImage& image, registry::PushRequest* req) {
    for (const ExportedLayer& l : image.layers) {
      for (ImageReference& repo : DistributionSources(env_.worker->content(), l.blob.digest)) {
        req->mount_sources[l.blob.digest].push_back(std::move(repo));
      }
    }
  }

  ImageExportOptions o_;
  ExporterEnv env_;
  std::mutex insecure_mu_;
  std::unique_ptr<registry::Registry> insecure_;  // registry.insecure's client (see Client())
};

class ArchiveExporter : public Exporter {
 public:
  ArchiveExporter(ArchiveFormat format, ImageExportOptions o, ExporterEnv env, std::string dest)
      : format_(format), o_(std::move(o)), env_(env), dest_(std::move(dest)) {}
  std::string Name() const override {
    return StrCat("exporting to ", format_ == ArchiveFormat::kOci ? "oci" : "docker",
                  " image format");
  }

  absl::StatusOr<ExportResponse> Export(const ExportInput& in, const ExportTarget& target,
                                        const CancelToken& cancel) override {
    ExportTarget where = target;
    if (where.path.empty() && where.stream == nullptr) where.path = dest_;
    // Check the destination before the work, not after.
    std::unique_ptr<TarballOutput> out;
    if (o_.tar) {
      KILN_ASSIGN_OR_RETURN(out, TarballOutput::Open(where));
    } else if (where.path.empty()) {
      return absl::InvalidArgumentError("export: output directory is required (dest=...)");
    }
    KILN_ASSIGN_OR_RETURN(CommittedImage image,
                          Commit(*env_.worker, in, o_, env_.layer_parallelism, cancel));
    oci::Descriptor desc = image.manifest;
    if (!desc.annotations.count(kCreatedAnnotation)) {
      std::optional<int64_t> epoch = o_.epoch ? o_.epoch : in.source_date_epoch;
      desc.annotations[kCreatedAnnotation] =
          FormatRfc3339Utc(epoch ? *epoch : static_cast<int64_t>(std::time(nullptr)));
    }
    ExportResponse resp;
    resp[kExporterImageDigest] = desc.digest.str();
    resp[kExporterImageConfigDigest] = image.config.digest.str();
    resp[kExporterImageDescriptor] = DescriptorResponse(desc);

    ArchiveImage archive;
    archive.manifest = desc;
    archive.config = image.config;
    for (const auto& l : image.layers) archive.layers.push_back(l.blob);
    for (const std::string& name : SplitNames(ResolveName(o_, in))) {
      auto ref = ParseNormalizedReference(name);
      if (!ref.ok()) return Annotate(ref.status(), StrCat("failed to parse ", name));
      archive.names.push_back(ref->WithDefaultTag().String());
    }
    if (!archive.names.empty()) resp[kExporterImageName] = absl::StrJoin(archive.names, ",");

    if (o_.tar) {
      Step step(in, "sending tarball");
      absl::Status s =
          WriteImageArchive(env_.worker->content(), archive, format_, out->sink(), cancel);
      if (s.ok()) s = out->Commit();
      KILN_RETURN_IF_ERROR(step.Done(s));
    } else {
      // buildctl tags the layout's index entry with image.name, or "latest".
      auto name = resp.find(kExporterImageName);
      std::string tag = name != resp.end() ? name->second : "latest";
      Step step(in, StrCat("exporting to ", where.path));
      KILN_RETURN_IF_ERROR(
          step.Done(WriteImageLayoutDir(env_.worker->content(), archive, where.path, tag, cancel)));
    }
    return resp;
  }

 private:
  ArchiveFormat format_;
  ImageExportOptions o_;
  ExporterEnv env_;
  std::string dest_;
};

class FsExporter : public Exporter {
 public:
  enum class Kind { kLocal, kTar };
  FsExporter(Kind kind, FsExportOptions o, ExporterEnv env, std::string dest)
      : kind_(kind), o_(o), env_(env), dest_(std::move(dest)) {}
  std::string Name() const override {
    return kind_ == Kind::kLocal ? "exporting to client directory" : "exporting to client tarball";
  }

  absl::StatusOr<ExportResponse> Export(const ExportInput& in, const ExportTarget& target,
                                        const CancelToken& cancel) override {
    ExportTarget where = target;
    if (where.path.empty() && where.stream == nullptr) where.path = dest_;
    TreeTarOptions to;
    to.epoch = o_.epoch ? o_.epoch : in.source_date_epoch;
    to.cancel = cancel;
    ResultRef result = in.result ? in.result : env_.worker->EmptyResult();
    if (kind_ == Kind::kLocal) {
      if (where.path.empty()) {
        return absl::InvalidArgumentError("export: output directory is required (dest=...)");
      }
      Step step(in, "copying files");
      KILN_RETURN_IF_ERROR(step.Done(env_.worker->WithReadOnlyMount(
          result, [&](const std::string& root) { return CopyTreeToDir(root, where.path, to); })));
      return ExportResponse();
    }
    KILN_ASSIGN_OR_RETURN(auto out, TarballOutput::Open(where));
    Step step(in, "sending tarball");
    absl::Status s = env_.worker->WithReadOnlyMount(
        result, [&](const std::string& root) { return WriteTreeTar(root, out->sink(), to); });
    if (s.ok()) s = out->Commit();
    KILN_RETURN_IF_ERROR(step.Done(s));
    return ExportResponse();
  }

 private:
  Kind kind_;
  FsExportOptions o_;
  ExporterEnv env_;
  std::string dest_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Exporter>> NewExporter(std::string_view type,
                                                      const ExporterAttrs& attrs,
                                                      const ExporterEnv& env) {
  if (env.worker == nullptr) return absl::InvalidArgumentError("exporter: no worker");
  std::string dest;
  if (auto it = attrs.find("dest"); it != attrs.end()) dest = it->second;
  if (type == "image" || type == "oci" || type == "docker") {
    KILN_ASSIGN_OR_RETURN(ImageExportOptions o, ParseImageExportOptions(type, attrs));
    if (type == "image") return std::unique_ptr<Exporter>(new ImageExporter(std::move(o), env));
    ArchiveFormat f = type == "oci" ? ArchiveFormat::kOci : ArchiveFormat::kDocker;
    return std::unique_ptr<Exporter>(new ArchiveExporter(f, std::move(o), env, dest));
  }
  if (type == "local" || type == "tar") {
    KILN_ASSIGN_OR_RETURN(FsExportOptions o, ParseFsExportOptions(attrs));
    auto kind = type == "local" ? FsExporter::Kind::kLocal : FsExporter::Kind::kTar;
    return std::unique_ptr<Exporter>(new FsExporter(kind, o, env, dest));
  }
  return absl::InvalidArgumentError(StrCat("exporter \"", type, "\" could not be found"));
}

}  // namespace kiln::engine
