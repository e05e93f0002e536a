// Internal types of the Dockerfile converter (convert*.cc): BuildKit's dispatchState,
// dispatchOpt and the per-instruction dispatch functions.  Not part of the public API.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/oci.h"
#include "frontends/dockerfile/convert.h"
#include "frontends/dockerfile/instructions.h"
#include "frontends/dockerfile/shell_lex.h"
#include "llb/llb.h"

namespace kiln::frontends::dockerfile::internal {

// An ARG with its value (nullopt: declared without a value and not given).
struct ArgValue {
  std::string key;
  std::optional<std::string> value;
  std::string ValueString() const { return value.value_or(""); }
};

struct DispatchState;

// A command plus the stages it reads from (Go: command{Command, sources}).  For RUN, one
// source per --mount (in mount order); for COPY --from, one.
struct CommandEntry {
  Command cmd;
  std::vector<DispatchState*> sources;
};

// Go: dispatchState.
struct DispatchState {
  Stage stage;
  llb::State state;
  oci::Image image;
  bool diff_ids_set = false;  // see ConvertResult::image_diff_ids_set
  std::optional<oci::Platform> platform;
  DispatchState* base = nullptr;
  bool noinit = false;        // state given by a named context
  bool unregistered = false;  // an image used by COPY --from / RUN --mount from=
  std::vector<DispatchState*> deps;
  std::vector<ArgValue> build_args;
  std::vector<CommandEntry> commands;
  std::set<std::string> ctx_paths;
  bool ignore_cache = false;
  bool cmd_set = false;
  std::string stage_name;
  int cmd_index = 0;
  int cmd_total = 0;
  bool prefix_platform = false;
  // Whether ops of this stage's base carry its location (false for images named by RUN
  // --mount from=, which BuildKit gives an empty location).
  bool op_location = true;

  void AddDep(DispatchState* d) {
    for (DispatchState* x : deps) {
      if (x == d) return;
    }
    deps.push_back(d);
  }
};

// Go: dispatchStates (owns every state, in registration order).
class DispatchStates {
 public:
  DispatchState* Add(std::unique_ptr<DispatchState> ds);
  // Keeps `ds` alive without registering it (sources of ONBUILD triggers, which BuildKit never
  // resolves).
  DispatchState* AddDetached(std::unique_ptr<DispatchState> ds);
  DispatchState* FindByName(std::string_view name) const;
  absl::StatusOr<DispatchState*> FindByIndex(int64_t index) const;
  const std::vector<std::unique_ptr<DispatchState>>& states() const { return states_; }
  size_t size() const { return states_.size(); }

 private:
  std::vector<std::unique_ptr<DispatchState>> states_;
  std::vector<std::unique_ptr<DispatchState>> detached_;
  std::vector<std::pair<std::string, DispatchState*>> by_name_;  // lower-cased names
};

// Go: dispatchOpt (shared by all stages of one conversion).
struct DispatchOpt {
  const ConvertOptions* convert = nullptr;
  DispatchStates* all_states = nullptr;
  std::vector<ArgValue> meta_args;
  ShellLex shlex;
  llb::State build_context;
  std::optional<llb::ProxyEnv> proxy_env;
  oci::Platform target_platform;
  std::vector<oci::Platform> build_platforms;
  std::shared_ptr<llb::SourceMap> source_map;
  std::optional<std::string> epoch;  // RFC 3339 time for history entries
  std::function<std::string()> new_id;

  bool CapSupported(std::string_view cap) const;
  const std::string& filename() const { return convert->filename; }
};

// ---- dispatch (convert_dispatch.cc, convert_copy.cc, convert_run.cc) ----

// Expands the command's words with the stage's environment and dispatches it.
absl::Status Dispatch(DispatchState& d, CommandEntry& entry, DispatchOpt& opt);
// Parses and runs the base image's ONBUILD triggers.
absl::Status DispatchOnBuildTriggers(DispatchState& d, const std::vector<std::string>& triggers,
                                     DispatchOpt& opt);
absl::Status DispatchWorkdir(DispatchState& d, const std::string& path, bool commit,
                             const SourceRange* location, const std::string& code,
                             DispatchOpt* opt);
// Sets the user of the state and the image config (the history entry is the caller's).
void DispatchUser(DispatchState& d, const std::string& user);
absl::Status DispatchRun(DispatchState& d, const Command& cmd, const RunCommand& run,
                         const std::vector<DispatchState*>& sources, DispatchOpt& opt);

struct CopyConfig {
  const SourcesAndDest* params = nullptr;
  std::vector<std::string> exclude_patterns;
  llb::State source;
  bool is_add = false;
  std::string code;  // the command text for the progress name
  std::string chown;
  std::string chmod;
  bool link = false;
  std::optional<bool> keep_git_dir;
  std::string checksum;
  bool parents = false;
  std::optional<bool> unpack;
  SourceRange location;
};
absl::Status DispatchCopy(DispatchState& d, const CopyConfig& cfg, DispatchOpt& opt);

// Turns the command into an entry, finding the stages it depends on (Go: toCommand).  Images
// it names (COPY --from=image, RUN --mount from=image or without from) become new unregistered
// states, registered in `all` when `register_sources` (as BuildKit does for stage commands, not
// for ONBUILD triggers).
absl::StatusOr<CommandEntry> ToCommand(Command cmd, DispatchStates& all, bool register_sources);

// ---- helpers (convert_util.cc) ----

// Go's prefixCommand: "[stage i/n] str" (increments d.cmd_index).
std::string PrefixCommand(DispatchState& d, std::string_view str, bool prefix_platform,
                          const std::optional<oci::Platform>& platform,
                          const std::vector<std::string>& env);
// Go's uppercaseCmd / processCmdEnv.
std::string UppercaseCmd(std::string_view str);
std::string ProcessCmdEnv(const ShellLex& lex, std::string_view cmd,
                          const std::vector<std::string>& env);
// Op location constraints for a command (one range per line, as BuildKit).
std::vector<llb::Range> ToRanges(const SourceRange& r);
// Go's dfCmd(x): description {"com.docker.dockerfile.v1.command": x}.
llb::Constraints DfCmd(std::string_view cmd);
// Go's commitToHistory.
void CommitToHistory(oci::Image& img, std::string msg, bool with_layer, bool has_state,
                     const std::optional<std::string>& epoch);
// Go's withShell.
std::vector<std::string> WithShell(const oci::Image& img, const std::vector<std::string>& args);
// Go's addEnv on an image config env list.
void AddImageEnv(std::vector<std::string>& env, std::string_view key, std::string_view value);
std::pair<std::string, std::string> ParseKeyValue(std::string_view env);
// BuildKit's emptyImage(platform).
oci::Image EmptyImage(const oci::Platform& platform);

// Go's fmt %q of a []string: ["a" "b"].
std::string GoQuoteSlice(const std::vector<std::string>& v);
// Go's fmt %v of a []string: [a b].
std::string GoFormatSlice(const std::vector<std::string>& v);
// Go's time.Duration.String().
std::string GoDuration(int64_t ns);
// Go's fmt %q of an int (a quoted rune literal).
std::string GoQuoteRune(int64_t r);

// nat.ParsePortSpecs: the exposed ports ("80/tcp") of EXPOSE words, sorted.
absl::StatusOr<std::vector<std::string>> ParsePortSpecs(const std::vector<std::string>& ports);
// moby/sys/signal.ParseSignal (validation only).
absl::Status ValidateSignal(std::string_view raw);

// gitutil.ParseGitRef (v0.11.6): nullopt when `ref` is not a git reference.
struct GitRef {
  std::string remote;
  std::string commit;
  std::string subdir;
  bool indistinguishable_from_local = false;
};
std::optional<GitRef> ParseGitRef(std::string_view ref);
bool IsHttpSource(std::string_view src);
// path.Base of the URL's path, or "__unnamed__" (the file name BuildKit gives ADD <url>).
std::string HttpSourceFilename(std::string_view url);

}  // namespace kiln::frontends::dockerfile::internal
