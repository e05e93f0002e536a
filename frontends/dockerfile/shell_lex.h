// Dockerfile word expansion: BuildKit's shell lexer (frontend/dockerfile/shell).
//
// Expands environment references in one Dockerfile word the way BuildKit does, which is a
// subset of POSIX sh:
//   $VAR ${VAR}             value, or "" when unset
//   ${VAR:-w} ${VAR-w}      w when VAR is unset or empty (":") / unset
//   ${VAR:+w} ${VAR+w}      w when VAR is set and non-empty (":") / set
//   ${VAR:?m} ${VAR?m}      error "VAR: m" when VAR is unset or empty / unset
//   ${VAR#p} ${VAR##p}      remove the shortest / longest prefix matching pattern p
//   ${VAR%p} ${VAR%%p}      remove the shortest / longest suffix matching pattern p
//   ${VAR/p/r} ${VAR//p/r}  replace the first / every longest match of p with r
// Patterns know '*', '?' and '\'-escapes.  Single quotes are literal; inside double quotes
// only '$' expands and the escape character escapes '"', '$' and itself.  Outside quotes the
// escape character escapes the next character.  The escape character is '\' or '`' (the
// Dockerfile's `# escape=` directive).
//
// ProcessWord returns one string (quotes removed, whitespace kept); ProcessWords splits the
// result into words on unquoted whitespace (as for EXPOSE).  Every variable that was looked up
// is reported as matched (it was set) or unmatched, which the converter uses to track which
// build args a stage uses.
//
// Thread-safety: a ShellLex is immutable; concurrent calls are safe.  The lookup function must
// be safe to call from the calling thread.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::frontends::dockerfile {

// Returns the value of `name`, or nullopt when it is not set ("" is set-but-empty).
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// An EnvLookup over "KEY=VALUE" entries (an entry without '=' is KEY set to "").  Later
// entries win.  The returned function owns a copy of the entries.
EnvLookup EnvFromList(const std::vector<std::string>& entries);
// An EnvLookup over a map (copied).
EnvLookup EnvFromMap(const std::map<std::string, std::string>& env);

struct ShellLexOptions {
  // Keep quote characters in the output (the quoted text is still not expanded/split).
  bool raw_quotes = false;
  // Keep escape characters in the output.
  bool raw_escapes = false;
  // Treat quotes as ordinary characters.
  bool skip_process_quotes = false;
  // Leave references to unset variables as written ("$FOO", "${FOO:-x}") instead of "".
  bool skip_unset_env = false;
};

struct ShellWordResult {
  std::string result;               // the expanded word
  std::vector<std::string> words;   // the expanded word split into words
  std::set<std::string> matched;    // variables looked up and set
  std::set<std::string> unmatched;  // variables looked up and not set
};

class ShellLex {
 public:
  explicit ShellLex(char escape_token = '\\', ShellLexOptions options = {})
      : escape_(escape_token), options_(options) {}

  char escape_token() const { return escape_; }
  const ShellLexOptions& options() const { return options_; }

  // Expands `word`.  Errors (InvalidArgument) read like BuildKit's:
  // `failed to process "${x": syntax error: missing '}'`.
  absl::StatusOr<std::string> ProcessWord(std::string_view word, const EnvLookup& env) const;
  absl::StatusOr<std::vector<std::string>> ProcessWords(std::string_view word,
                                                        const EnvLookup& env) const;
  absl::StatusOr<ShellWordResult> ProcessWordWithMatches(std::string_view word,
                                                         const EnvLookup& env) const;

 private:
  char escape_;
  ShellLexOptions options_;
};

}  // namespace kiln::frontends::dockerfile
