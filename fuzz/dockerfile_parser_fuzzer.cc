// libFuzzer target for the Dockerfile front half: parse, split into stages and typed
// instructions, then expand every word with a fixed environment, the way the converter will.
// Also reads the input as a .dockerignore and matches its own lines against the patterns.
// Any crash, sanitizer report or hang is a bug; errors are expected and ignored, but every
// located error must carry a decodable SourceRange.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "base/pattern_match.h"
#include "frontends/dockerfile/dockerignore.h"
#include "frontends/dockerfile/instructions.h"
#include "frontends/dockerfile/parser.h"
#include "frontends/dockerfile/shell_lex.h"

namespace df = kiln::frontends::dockerfile;

namespace {

const df::EnvLookup& FixedEnv() {
  static const df::EnvLookup env = df::EnvFromList({
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "HOME=/root",
      "EMPTY=",
      "WORDS=a b  c",
      "STAR=*",
      "TARGETPLATFORM=linux/amd64",
      "VERSION=1.2.3",
  });
  return env;
}

void CheckLocated(const absl::Status& st) {
  if (st.ok() || st.code() != absl::StatusCode::kInvalidArgument) return;
  // Errors about the file itself are located; lexer errors from Expand are too.
  std::optional<df::SourceRange> r = df::GetSourceRange(st);
  if (r.has_value() && (r->start_line < 1 || r->end_line < r->start_line)) std::abort();
}

void ExpandAll(const df::ParseResult& ast, char escape) {
  const df::ShellLex lex(escape);
  df::ShellLexOptions raw_opts;
  raw_opts.raw_quotes = true;
  raw_opts.skip_unset_env = true;
  const df::ShellLex raw(escape, raw_opts);
  for (const df::Node& node : ast.nodes) {
    for (const std::string& word : node.args) {
      (void)lex.ProcessWordWithMatches(word, FixedEnv());
      (void)lex.ProcessWords(word, FixedEnv());
      (void)raw.ProcessWord(word, FixedEnv());
    }
    for (const std::string& flag : node.flags) (void)lex.ProcessWord(flag, FixedEnv());
    for (const df::Heredoc& h : node.heredocs) {
      (void)df::ChompHeredocContent(h.content);
      (void)df::ShellLex('\\', {false, false, true, false}).ProcessWord(h.content, FixedEnv());
    }
    (void)df::Dump(node);
  }
}

void ParseAndExpand(std::string_view content) {
  absl::StatusOr<df::ParseResult> ast = df::Parse(content, "Dockerfile");
  if (!ast.ok()) {
    CheckLocated(ast.status());
    return;
  }
  ExpandAll(*ast, ast->escape_token);
  absl::StatusOr<df::Dockerfile> file = df::ParseStages(*ast);
  if (!file.ok()) {
    CheckLocated(file.status());
    return;
  }
  const df::ShellLex lex(file->escape_token);
  const df::WordExpander expander = [&](std::string_view word) {
    return lex.ProcessWord(word, FixedEnv());
  };
  for (df::Command& arg : file->meta_args) CheckLocated(arg.Expand(expander));
  for (df::Stage& stage : file->stages) {
    (void)lex.ProcessWordWithMatches(stage.base_name, FixedEnv());
    (void)lex.ProcessWord(stage.platform, FixedEnv());
    for (df::Command& cmd : stage.commands) {
      CheckLocated(cmd.Expand(expander));
      CheckLocated(cmd.ExpandRaw(expander));
      if (const df::ExposeCommand* expose = cmd.As<df::ExposeCommand>()) {
        for (const std::string& p : expose->ports) (void)lex.ProcessWords(p, FixedEnv());
      }
    }
  }
  (void)df::FindStage(file->stages, "build");
}

void PatternsFromInput(std::string_view content) {
  std::vector<std::string> patterns = df::ParseDockerignore(content);
  absl::StatusOr<kiln::PatternMatcher> pm = kiln::PatternMatcher::Create(patterns);
  if (!pm.ok()) return;
  kiln::PatternMatcher::MatchInfo info;
  for (const std::string& p : patterns) {
    std::string path = kiln::CleanPath(p);
    (void)pm->Matches(path);
    (void)pm->MatchesOrParentMatches(path);
    (void)pm->MatchesUsingParentResults(path, info, &info);
    (void)kiln::GlobMatch(p, path);
  }
  absl::StatusOr<kiln::PathFilter> filter = kiln::PathFilter::Create(patterns, patterns);
  if (filter.ok() && !patterns.empty()) {
    (void)filter->Check(kiln::CleanPath(patterns[0]), true, {});
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Real Dockerfiles are small; bounding the input keeps every iteration fast.
  if (size > 256 * 1024) return 0;
  std::string_view content(reinterpret_cast<const char*>(data), size);
  ParseAndExpand(content);
  PatternsFromInput(content);
  return 0;
}
