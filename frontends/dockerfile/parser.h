// Dockerfile text -> AST, with BuildKit's parser semantics (frontend/dockerfile/parser, v0.11.6
// plus the `# check=` directive of later versions).
//
// What the parser does:
//   - parser directives (`# syntax=`, `# escape=`, `# check=`), only in the leading block of
//     comment lines, case-insensitive, each at most once; `escape` selects '\' or '`';
//   - comments, blank lines, line continuations (escape char at end of line, optionally
//     followed by spaces/tabs); comment lines and blank lines inside a continuation are skipped,
//     blank ones produce a warning like BuildKit's;
//   - the instruction keyword, leading `--flag` words, and the arguments, split the way each
//     instruction expects (JSON "exec form" where allowed, falling back to the shell form when
//     the JSON does not parse; ENV/LABEL key-value pairs; ...);
//   - heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, several per line) for RUN, COPY and ADD (also
//     behind ONBUILD), read from the following lines.
// It does not validate flags or argument counts and accepts unknown keywords: that is the job
// of instructions.h, which turns each Node into a typed command.
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "frontends/dockerfile/source_location.h"

namespace kiln::frontends::dockerfile {

// The body of a heredoc attached to an instruction.
struct Heredoc {
  std::string name;              // the delimiter word, quotes removed ("EOF")
  uint64_t file_descriptor = 0;  // "2<<EOF" -> 2; 0 when absent
  bool expand = true;            // false when the delimiter was quoted: no $VAR expansion
  bool chomp = false;            // "<<-": leading tabs are stripped from each line
  std::string content;           // the lines between the instruction and the delimiter,
                                 // each with its newline, exactly as in the file
  bool operator==(const Heredoc&) const = default;
};

// One instruction.
struct Node {
  // The keyword as written ("RUN", "run", "RUNN" for an unknown one).
  std::string keyword;
  // `--name[=value]` words before the arguments, quotes/escapes processed (BuildKit's
  // Node.Flags).  A bare "--" ends the flags and is not included.
  std::vector<std::string> flags;
  // The arguments (BuildKit's nodeArgs(node)):
  //   exec form (json == true): the JSON array's strings;
  //   RUN/CMD/ENTRYPOINT/SHELL shell form, MAINTAINER/USER/WORKDIR/STOPSIGNAL: one string, the
  //     rest of the line;
  //   FROM/EXPOSE and non-JSON ADD/COPY/VOLUME: whitespace-separated words (quotes kept);
  //   ARG: words split on unquoted whitespace (quotes and escapes kept for later expansion);
  //   ENV/LABEL: key, value, key, value, ... (quotes kept; see legacy_key_value);
  //   HEALTHCHECK: the type ("CMD", "NONE", ...) followed by the command as above;
  //   ONBUILD: the nested keyword followed by the nested node's arguments.
  std::vector<std::string> args;
  // True when the arguments came from a JSON array (exec form).
  bool json = false;
  // ENV/LABEL written as "ENV key value" (one pair, value is the rest of the line).
  bool legacy_key_value = false;
  // ONBUILD: exactly one nested node (the trigger); empty otherwise or for a bare ONBUILD.
  std::vector<Node> children;
  // Heredoc bodies, in the order their `<<` markers appear on the line.
  std::vector<Heredoc> heredocs;
  // The logical line: continuation lines joined, escapes at line ends removed, skipped
  // comment/blank lines dropped.  Heredoc bodies are not part of it.
  std::string original;
  // Comment lines ("#" removed, trimmed) directly above the instruction, oldest first; a "#"
  // line with no text resets them.  Used for doc comments of ARG/FROM.
  std::vector<std::string> prev_comments;
  // First and last physical line (1-based) including continuation and heredoc lines.
  int start_line = 0;
  int end_line = 0;

  // Lower-cased keyword ("run").
  std::string LowerKeyword() const;
  // The location of the node in `file`: lines start_line..end_line, whole lines.
  SourceRange Range(std::string_view file) const;
};

struct Directive {
  std::string name;   // lower-cased: "syntax", "escape" or "check"
  std::string value;  // trimmed
  int line = 0;
};

struct ParseResult {
  std::string file;  // the file name given to Parse, used in every SourceRange
  std::vector<Node> nodes;
  std::vector<Directive> directives;
  char escape_token = '\\';
  std::vector<Warning> warnings;
};

// Parses `content`.  `file` names the Dockerfile in errors ("Dockerfile").  Errors
// (InvalidArgument, located): a directive given twice, an invalid escape directive, a JSON
// array holding a non-string, an ENV/LABEL syntax error, an unterminated heredoc, a line over
// 64 KiB, a file with no instructions.
absl::StatusOr<ParseResult> Parse(std::string_view content, std::string_view file = "Dockerfile");

// BuildKit's Node.Dump() S-expression-like rendering, for tests and debugging, e.g.
// `run "echo hi"` or `from "busybox" "AS" "base"`.
std::string Dump(const Node& node);

// Parses a "<<EOF"-style word (BuildKit's ParseHeredoc); returns false when `word` is not a
// heredoc marker.  Errors (InvalidArgument) for a marker whose name does not lex.
absl::StatusOr<bool> ParseHeredocMarker(std::string_view word, Heredoc* out);

// Removes leading tabs from every line (the "<<-" form).
std::string ChompHeredocContent(std::string_view content);

}  // namespace kiln::frontends::dockerfile
