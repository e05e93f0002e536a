// Dockerfile AST -> typed, validated instructions and build stages (BuildKit's
// frontend/dockerfile/instructions).
//
// Each parser Node becomes either a Stage (FROM) or a Command holding one of the typed
// *Command structs below.  Flags are validated here (unknown flag, missing/bad value, repeated
// non-repeatable flag) and so are argument counts and the fixed-value options
// (RUN --network/--security, HEALTHCHECK durations, stage names).
//
// Variable expansion is NOT done here.  As in BuildKit, the converter expands a command while
// dispatching it, with the stage's environment at that point:
//   Command::Expand(expander)     expands the words BuildKit expands (ENV/LABEL keys and values,
//                                 ADD/COPY sources, destination, --chown, --chmod, --checksum,
//                                 WORKDIR, USER, VOLUME, STOPSIGNAL, ARG, and the RUN --mount
//                                 option values, which are then parsed into RunCommand::mounts);
//   Command::ExpandRaw(expander)  expands the content of heredoc sources of ADD/COPY whose
//                                 delimiter was not quoted (BuildKit uses a lexer that leaves
//                                 quotes alone for this one).
// Words not listed (RUN/CMD/ENTRYPOINT command lines, EXPOSE ports, COPY --from, FROM base
// name and --platform, ...) are expanded by the converter itself where BuildKit does so.
//
// Thread-safety: values; Expand mutates the command it is called on.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "frontends/dockerfile/parser.h"
#include "frontends/dockerfile/source_location.h"

namespace kiln::frontends::dockerfile {

// Expands one word (typically ShellLex::ProcessWord with the current environment).
using WordExpander = std::function<absl::StatusOr<std::string>(std::string_view word)>;

struct KeyValuePair {
  std::string key;
  std::string value;
  bool no_delim = false;  // written as "ENV key value" (legacy form)
  bool operator==(const KeyValuePair&) const = default;
};

struct KeyValuePairOptional {
  std::string key;
  std::optional<std::string> value;  // nullopt for "ARG name" without default
  std::string doc_comment;           // "# name <text>" comment above the ARG
  bool operator==(const KeyValuePairOptional&) const = default;
};

// ---- commands ----

struct EnvCommand {
  std::vector<KeyValuePair> env;
};

struct MaintainerCommand {
  std::string maintainer;
};

struct LabelCommand {
  std::vector<KeyValuePair> labels;
};

// A file given inline through a heredoc ("COPY <<EOF /dest").
struct SourceContent {
  std::string path;  // the heredoc name, used as the file name
  std::string data;  // content (tabs already stripped for "<<-")
  bool expand = true;
};

struct SourcesAndDest {
  std::string dest_path;
  std::vector<std::string> source_paths;
  std::vector<SourceContent> source_contents;
};

struct AddCommand {
  SourcesAndDest files;
  std::string chown;
  std::string chmod;
  bool link = false;
  std::vector<std::string> exclude_patterns;  // --exclude (repeatable)
  std::optional<bool> keep_git_dir;           // --keep-git-dir, nullopt when not given
  std::string checksum;                       // --checksum
  std::optional<bool> unpack;                 // --unpack, nullopt when not given
};

struct CopyCommand {
  SourcesAndDest files;
  std::string from;  // --from (stage name, index or image), not expanded by Expand
  std::string chown;
  std::string chmod;
  bool link = false;
  bool parents = false;                       // --parents
  std::vector<std::string> exclude_patterns;  // --exclude (repeatable)
};

struct OnbuildCommand {
  // The trigger instruction text ("RUN echo hi"), with heredoc bodies appended as BuildKit
  // stores them in the image config.
  std::string expression;
};

struct WorkdirCommand {
  std::string path;
};

// A heredoc attached to RUN/CMD/ENTRYPOINT: files the shell form reads.
struct ShellInlineFile {
  std::string name;
  std::string data;
  bool chomp = false;
};

struct ShellDependantCmdLine {
  // Exec form: the JSON strings; shell form: one string (the command line); empty when the
  // instruction had no arguments.
  std::vector<std::string> cmd_line;
  std::vector<ShellInlineFile> files;
  bool prepend_shell = false;  // shell form: run through the stage's SHELL
};

enum class MountType { kBind, kCache, kTmpfs, kSecret, kSsh };
enum class ShareMode { kShared, kPrivate, kLocked };
std::string_view MountTypeName(MountType t);
std::string_view ShareModeName(ShareMode m);

// One RUN --mount, after expansion and validation (BuildKit's instructions.Mount).
struct Mount {
  MountType type = MountType::kBind;
  std::string from;
  std::string source;
  std::string target;
  bool read_only = false;  // default: true for bind/secret/ssh, false for cache/tmpfs
  int64_t size_limit = 0;  // tmpfs size=, bytes
  std::string cache_id;    // id=
  std::optional<ShareMode> sharing;
  bool required = false;           // secret/ssh
  std::optional<std::string> env;  // secret env= (expose the secret as this variable)
  std::optional<uint64_t> mode;
  std::optional<uint64_t> uid;
  std::optional<uint64_t> gid;
};

struct RunCommand {
  ShellDependantCmdLine cmd;
  // The raw --mount values, in order; RunCommand::mounts is filled from them by Expand.
  std::vector<std::string> mount_specs;
  std::vector<Mount> mounts;
  std::string network = "default";      // default|none|host
  std::string security = "sandbox";     // sandbox|insecure
  std::vector<std::string> flags_used;  // names of the flags given, sorted ("mount", ...)
};

struct CmdCommand {
  ShellDependantCmdLine cmd;
};

struct EntrypointCommand {
  ShellDependantCmdLine cmd;
};

// The image config's Healthcheck.  Durations in nanoseconds, 0 = inherit/default.
struct HealthCheck {
  std::vector<std::string> test;  // {"NONE"} | {"CMD", args...} | {"CMD-SHELL", line}
  int64_t interval = 0;
  int64_t timeout = 0;
  int64_t start_period = 0;
  int64_t start_interval = 0;
  int retries = 0;
};

struct HealthCheckCommand {
  HealthCheck health;
};

struct ExposeCommand {
  std::vector<std::string> ports;  // raw words, sorted; expanded/split by the converter
};

struct UserCommand {
  std::string user;
};

struct VolumeCommand {
  std::vector<std::string> volumes;
};

struct StopSignalCommand {
  std::string signal;
};

struct ArgCommand {
  std::vector<KeyValuePairOptional> args;
};

struct ShellCommand {
  std::vector<std::string> shell;
};

using CommandValue =
    std::variant<EnvCommand, MaintainerCommand, LabelCommand, AddCommand, CopyCommand,
                 OnbuildCommand, WorkdirCommand, RunCommand, CmdCommand, EntrypointCommand,
                 HealthCheckCommand, ExposeCommand, UserCommand, VolumeCommand, StopSignalCommand,
                 ArgCommand, ShellCommand>;

// One instruction other than FROM.
struct Command {
  std::string name;                   // keyword as written ("RUN", "run")
  std::string code;                   // the logical line, trimmed ("RUN echo hi")
  SourceRange location;               // lines of the instruction (incl. heredoc bodies)
  std::vector<std::string> comments;  // comment lines directly above
  CommandValue value;

  template <typename T>
  T* As() {
    return std::get_if<T>(&value);
  }
  template <typename T>
  const T* As() const {
    return std::get_if<T>(&value);
  }

  // Expands the words BuildKit expands for this instruction (see the file comment), in place.
  // No-op for instructions without such words.  Errors carry this command's location.
  absl::Status Expand(const WordExpander& expander);
  // Expands heredoc source contents of ADD/COPY marked `expand`.
  absl::Status ExpandRaw(const WordExpander& expander);
};

struct Stage {
  std::string name;         // "AS name", lower-cased; empty when unnamed
  std::string orig_cmd;     // "FROM" as written
  std::string base_name;    // raw (unexpanded) image or stage reference
  std::string platform;     // raw --platform value, empty when absent
  std::string doc_comment;  // "# name <text>" comment above FROM
  std::string source_code;  // the FROM line, trimmed
  SourceRange location;
  std::vector<std::string> comments;
  std::vector<Command> commands;
};

struct Dockerfile {
  std::vector<Stage> stages;
  std::vector<Command> meta_args;  // ARG commands before the first FROM (ArgCommand values)
  std::vector<Directive> directives;
  char escape_token = '\\';
  std::vector<Warning> warnings;  // parser warnings plus stage-name notes
};

// Parses one non-FROM node.  InvalidArgument, located at the node, e.g.
// "Dockerfile:3: unknown instruction: RUNN (did you mean RUN?)" or
// "Dockerfile:5: RUN: unknown flag: --mout (did you mean mount?)".
absl::StatusOr<Command> ParseCommand(const Node& node, std::string_view file);

// Parses one FROM node.
absl::StatusOr<Stage> ParseStage(const Node& node, std::string_view file);

// Splits a parsed file into stages (BuildKit's instructions.Parse): ARGs before the first FROM
// become meta args; any other instruction before it is an error.  Also adds the warnings of
// BuildKit's lint rules that need no build context (warnings, not errors, as in BuildKit):
// DuplicateStageName, ReservedStageName ("scratch", "context"), StageNameCasing,
// FromAsCasing, MaintainerDeprecated.
absl::StatusOr<Dockerfile> ParseStages(const ParseResult& ast);

// Parse + ParseStages.
absl::StatusOr<Dockerfile> ParseDockerfile(std::string_view content,
                                           std::string_view file = "Dockerfile");

// Parses one --mount value (CSV "type=cache,target=/x,..."), expanding each value with
// `expander` and validating it (BuildKit's parseMount).  Not located; Command::Expand adds the
// location.
absl::StatusOr<Mount> ParseMount(std::string_view spec, const WordExpander& expander);

// Index of the stage named `name` (case-insensitive), or -1.
int FindStage(const std::vector<Stage>& stages, std::string_view name);

}  // namespace kiln::frontends::dockerfile
