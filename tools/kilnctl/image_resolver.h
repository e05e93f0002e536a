// Where `kilnctl` gets base image configs from when it converts a Dockerfile itself (debug
// dump-llb): an ImageResolver.
//
// Today there is no engine in this command's process, so the resolvers are:
//   * StaticImageResolver: configs given on the command line (--image-config REF=FILE);
//   * SyntheticImageResolver: a made-up config (linux/<arch>, PATH only, one fake layer, no
//     digest), with a note on stderr, so any Dockerfile converts;
//   * FallbackImageResolver: the first resolver that knows the image wins.
// The engine-backed resolver (local content store, then the registry) implements the same
// interface and slots in front of (or replaces) the synthetic one.
//
// Thread-safety: implementations must allow concurrent Resolve calls (the Dockerfile frontend
// resolves the stages of a build in parallel).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/oci.h"
#include "llb/frontend.h"

namespace kiln::tools::kilnctl {

class ImageResolver {
 public:
  ImageResolver() = default;
  ImageResolver(const ImageResolver&) = delete;
  ImageResolver& operator=(const ImageResolver&) = delete;
  virtual ~ImageResolver() = default;

  // As llb::FrontendClient::ResolveImageConfig: `ref` is normalized by the frontend
  // ("docker.io/library/busybox:latest", possibly with "@sha256:...").  NotFound when this
  // resolver does not know the image.
  virtual absl::StatusOr<llb::ResolvedImage> Resolve(const std::string& ref,
                                                     const std::optional<oci::Platform>& platform,
                                                     llb::ResolveMode mode) = 0;
};

// Configs from files.  Entries are keyed by the normalized reference without digest; a digest
// given with the reference (busybox:1.36@sha256:...) is returned as the manifest digest, so the
// frontend pins it into the LLB.
class StaticImageResolver : public ImageResolver {
 public:
  // `spec` is "REF=FILE"; the file must hold an image config (JSON).
  absl::Status AddFromSpec(const std::string& spec);
  absl::Status Add(const std::string& ref, std::string config_json);

  absl::StatusOr<llb::ResolvedImage> Resolve(const std::string& ref,
                                             const std::optional<oci::Platform>& platform,
                                             llb::ResolveMode mode) override;

 private:
  struct Entry {
    std::optional<Digest> digest;
    std::string config_json;
  };
  std::map<std::string, Entry> entries_;  // written before use, then read-only
};

// A synthetic config for any image; reports each image once through `note`.
class SyntheticImageResolver : public ImageResolver {
 public:
  explicit SyntheticImageResolver(std::function<void(const std::string&)> note)
      : note_(std::move(note)) {}

  absl::StatusOr<llb::ResolvedImage> Resolve(const std::string& ref,
                                             const std::optional<oci::Platform>& platform,
                                             llb::ResolveMode mode) override;

 private:
  std::function<void(const std::string&)> note_;
  std::mutex mu_;
  std::set<std::string> noted_;
};

// Asks each resolver in turn; NotFound moves on to the next, any other error is returned.
class FallbackImageResolver : public ImageResolver {
 public:
  explicit FallbackImageResolver(std::vector<ImageResolver*> chain) : chain_(std::move(chain)) {}

  absl::StatusOr<llb::ResolvedImage> Resolve(const std::string& ref,
                                             const std::optional<oci::Platform>& platform,
                                             llb::ResolveMode mode) override;

 private:
  std::vector<ImageResolver*> chain_;  // not owned
};

}  // namespace kiln::tools::kilnctl
