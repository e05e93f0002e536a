#include "frontends/dockerfile/parser.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "frontends/dockerfile/instructions.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::frontends::dockerfile {
namespace {

std::string DumpAll(const ParseResult& r) {
  std::string out;
  for (const Node& n : r.nodes) out += "(" + Dump(n) + ")\n";
  return out;
}

ParseResult MustParse(std::string_view content) {
  absl::StatusOr<ParseResult> r = Parse(content, "Dockerfile");
  EXPECT_TRUE(r.ok()) << r.status() << "\n" << content;
  return r.ok() ? *std::move(r) : ParseResult{};
}

struct DumpCase {
  const char* name;
  const char* dockerfile;
  const char* dump;
};

// Every instruction, both forms, flags, continuations, escapes.  Dumps use BuildKit's
// Node.Dump() format.
TEST(Parser, DumpTable) {
  const DumpCase cases[] = {
      {"from", "FROM busybox\n", "(from \"busybox\")\n"},
      {"from as", "FROM busybox AS base\n", "(from \"busybox\" \"AS\" \"base\")\n"},
      {"from platform", "FROM --platform=$BUILDPLATFORM golang:1.21 as b\n",
       "(from [\"--platform=$BUILDPLATFORM\"] \"golang:1.21\" \"as\" \"b\")\n"},
      {"lowercase keyword", "from x\nrun echo hi\n", "(from \"x\")\n(run \"echo hi\")\n"},
      {"run shell", "FROM x\nRUN echo \"a  b\" 'c'\n",
       "(from \"x\")\n(run \"echo \\\"a  b\\\" 'c'\")\n"},
      {"run exec", "FROM x\nRUN [\"echo\", \"a b\"]\n", "(from \"x\")\n(run \"echo\" \"a b\")\n"},
      {"run invalid json is shell", "FROM x\nRUN [\"echo\", ]\n",
       "(from \"x\")\n(run \"[\\\"echo\\\", ]\")\n"},
      {"run single quotes json is shell", "FROM x\nRUN ['a']\n", "(from \"x\")\n(run \"['a']\")\n"},
      {"run empty json", "FROM x\nCMD []\n", "(from \"x\")\n(cmd)\n"},
      {"json trailing data ignored", "FROM x\nCMD [\"a\"] trailing\n",
       "(from \"x\")\n(cmd \"a\")\n"},
      {"json unicode escapes", "FROM x\nCMD [\"\\u00e9\\n\", \"\\ud83d\\ude00\"]\n",
       "(from \"x\")\n(cmd \"\u00e9\\n\" \"\U0001F600\")\n"},
      {"run mount flags",
       "FROM x\nRUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=a --network=none "
       "make\n",
       "(from \"x\")\n(run [\"--mount=type=cache,target=/root/.cache\" "
       "\"--mount=type=secret,id=a\" "
       "\"--network=none\"] \"make\")\n"},
      {"flag quoting", "FROM x\nCOPY --chown=\"a b\" --from='s' src dst\n",
       "(from \"x\")\n(copy [\"--chown=a b\" \"--from=s\"] \"src\" \"dst\")\n"},
      {"double dash ends flags", "FROM x\nRUN --network=host -- --notaflag\n",
       "(from \"x\")\n(run [\"--network=host\"] \"--notaflag\")\n"},
      {"copy json", "FROM x\nCOPY [\"a b\", \"c\"]\n", "(from \"x\")\n(copy \"a b\" \"c\")\n"},
      {"add whitespace", "FROM x\nADD  a\tb   c\n", "(from \"x\")\n(add \"a\" \"b\" \"c\")\n"},
      {"volume json", "FROM x\nVOLUME [\"/a\", \"/b\"]\n",
       "(from \"x\")\n(volume \"/a\" \"/b\")\n"},
      {"volume words", "FROM x\nVOLUME /a /b\n", "(from \"x\")\n(volume \"/a\" \"/b\")\n"},
      {"cmd shell", "FROM x\nCMD echo $HOME\n", "(from \"x\")\n(cmd \"echo $HOME\")\n"},
      {"entrypoint exec", "FROM x\nENTRYPOINT [\"/bin/sh\", \"-c\"]\n",
       "(from \"x\")\n(entrypoint \"/bin/sh\" \"-c\")\n"},
      {"shell", "FROM x\nSHELL [\"powershell\", \"-command\"]\n",
       "(from \"x\")\n(shell \"powershell\" \"-command\")\n"},
      {"env legacy", "FROM x\nENV PATH /usr/bin:$PATH\n",
       "(from \"x\")\n(env \"PATH\" \"/usr/bin:$PATH\")\n"},
      {"env legacy keeps spaces", "FROM x\nENV A b  c d\n",
       "(from \"x\")\n(env \"A\" \"b  c d\")\n"},
      {"env pairs", "FROM x\nENV A=1 B=\"two words\" C=a\\ b D=\n",
       "(from \"x\")\n(env \"A\" \"1\" \"B\" \"\\\"two words\\\"\" \"C\" \"a\\\\ b\" \"D\" "
       "\"\")\n"},
      {"label", "FROM x\nLABEL \"com.example.vendor\"=\"ACME\" version=1.0\n",
       "(from \"x\")\n(label \"\\\"com.example.vendor\\\"\" \"\\\"ACME\\\"\" \"version\" "
       "\"1.0\")\n"},
      {"arg", "ARG A\nARG B=1 C=\"x y\"\nFROM x\n",
       "(arg \"A\")\n(arg \"B=1\" \"C=\\\"x y\\\"\")\n(from \"x\")\n"},
      {"expose", "FROM x\nEXPOSE 80/tcp 443\n", "(from \"x\")\n(expose \"80/tcp\" \"443\")\n"},
      {"workdir user maintainer stopsignal",
       "FROM x\nWORKDIR /a b\nUSER 1000:1000\nMAINTAINER Me <me@x>\nSTOPSIGNAL SIGKILL\n",
       "(from \"x\")\n(workdir \"/a b\")\n(user \"1000:1000\")\n(maintainer \"Me <me@x>\")\n"
       "(stopsignal \"SIGKILL\")\n"},
      {"healthcheck cmd", "FROM x\nHEALTHCHECK --interval=5s CMD curl -f http://x/\n",
       "(from \"x\")\n(healthcheck [\"--interval=5s\"] \"CMD\" \"curl -f http://x/\")\n"},
      {"healthcheck json", "FROM x\nHEALTHCHECK CMD [\"curl\", \"-f\"]\n",
       "(from \"x\")\n(healthcheck \"CMD\" \"curl\" \"-f\")\n"},
      {"healthcheck none", "FROM x\nHEALTHCHECK NONE\n", "(from \"x\")\n(healthcheck \"NONE\")\n"},
      {"onbuild", "FROM x\nONBUILD RUN echo hi\n", "(from \"x\")\n(onbuild (run \"echo hi\"))\n"},
      {"onbuild json", "FROM x\nONBUILD CMD [\"a\"]\n", "(from \"x\")\n(onbuild (cmd \"a\"))\n"},
      {"unknown instruction kept", "FROM x\nRUNN echo\n", "(from \"x\")\n(runn \"\")\n"},
      {"comments and blank lines", "# hello\n\nFROM x\n  # indented comment\n\nRUN a\n",
       "(from \"x\")\n(run \"a\")\n"},
      {"continuation", "FROM x\nRUN a \\\n  b \\\n  c\n", "(from \"x\")\n(run \"a   b   c\")\n"},
      {"continuation trailing whitespace", "FROM x\nRUN a \\  \t\n b\n",
       "(from \"x\")\n(run \"a  b\")\n"},
      {"continuation with comment lines", "FROM x\nRUN a \\\n# comment\n  # comment 2\n b\n",
       "(from \"x\")\n(run \"a  b\")\n"},
      {"continuation with empty line", "FROM x\nRUN a \\\n\n b\n",
       "(from \"x\")\n(run \"a  b\")\n"},
      {"continuation at eof", "FROM x\nRUN a \\", "(from \"x\")\n(run \"a\")\n"},
      {"double escape is not continuation", "FROM x\nRUN a \\\\\nRUN b\n",
       "(from \"x\")\n(run \"a \\\\\\\\\")\n(run \"b\")\n"},
      {"lone escape line continues", "FROM x\nRUN a \\\n\\\n b\n",
       "(from \"x\")\n(run \"a  b\")\n"},
      {"crlf", "FROM x\r\nRUN a \\\r\n b\r\n", "(from \"x\")\n(run \"a  b\")\n"},
      {"bom",
       "\xEF\xBB\xBF"
       "FROM x\n",
       "(from \"x\")\n"},
      {"escape backtick", "# escape=`\nFROM x\nRUN a `\n b\nCOPY c:\\a d\n",
       "(from \"x\")\n(run \"a  b\")\n(copy \"c:\\\\a\" \"d\")\n"},
      {"escape directive case", "# ESCAPE = `\nFROM x\nRUN a `\n b\n",
       "(from \"x\")\n(run \"a  b\")\n"},
      {"escape after blank line ignored", "\n# escape=`\nFROM x\nRUN a `\nRUN b\n",
       "(from \"x\")\n(run \"a `\")\n(run \"b\")\n"},
      {"escape after comment ignored", "# hi\n# escape=`\nFROM x\nRUN a `\nRUN b\n",
       "(from \"x\")\n(run \"a `\")\n(run \"b\")\n"},
      {"escape after syntax", "# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN a `\n b\n",
       "(from \"x\")\n(run \"a  b\")\n"},
      {"escape in env words", "# escape=`\nFROM x\nENV A=a` b\n",
       "(from \"x\")\n(env \"A\" \"a` b\")\n"},
      {"whitespace before keyword", "   FROM x\n\t RUN a\n", "(from \"x\")\n(run \"a\")\n"},
      {"flags without args", "FROM x\nRUN --network=none\n",
       "(from \"x\")\n(run [\"--network=none\"])\n"},
      {"empty instruction args", "FROM\nRUN\n", "(from)\n(run)\n"},
  };
  for (const DumpCase& c : cases) {
    absl::StatusOr<ParseResult> r = Parse(c.dockerfile, "Dockerfile");
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.status();
    EXPECT_EQ(DumpAll(*r), c.dump) << c.name;
  }
}

TEST(Parser, LineNumbers) {
  ParseResult r = MustParse(
      "# syntax=x\n"       // 1
      "\n"                 // 2
      "FROM a\n"           // 3
      "RUN b \\\n"         // 4
      "  # c\n"            // 5
      "  d\n"              // 6
      "\n"                 // 7
      "COPY <<EOF /x\n"    // 8
      "hello\n"            // 9
      "EOF\n"              // 10
      "ONBUILD RUN y\n");  // 11
  ASSERT_EQ(r.nodes.size(), 4u);
  EXPECT_EQ(r.nodes[0].start_line, 3);
  EXPECT_EQ(r.nodes[0].end_line, 3);
  EXPECT_EQ(r.nodes[1].start_line, 4);
  EXPECT_EQ(r.nodes[1].end_line, 6);
  EXPECT_EQ(r.nodes[2].start_line, 8);
  EXPECT_EQ(r.nodes[2].end_line, 10);
  EXPECT_EQ(r.nodes[3].start_line, 11);
  EXPECT_EQ(r.nodes[3].children.at(0).start_line, 11);
  EXPECT_EQ(r.nodes[1].Range("Dockerfile"), (SourceRange{"Dockerfile", 4, 0, 6, 0}));
  EXPECT_EQ(r.nodes[1].original, "RUN b   d");
}

TEST(Parser, Directives) {
  ParseResult r =
      MustParse("# syntax = docker/dockerfile:1.4\n# check=skip=all\n#escape=`\nFROM x\n");
  ASSERT_EQ(r.directives.size(), 3u);
  EXPECT_EQ(r.directives[0].name, "syntax");
  EXPECT_EQ(r.directives[0].value, "docker/dockerfile:1.4");
  EXPECT_EQ(r.directives[0].line, 1);
  EXPECT_EQ(r.directives[1].name, "check");
  EXPECT_EQ(r.directives[1].value, "skip=all");
  EXPECT_EQ(r.directives[2].name, "escape");
  EXPECT_EQ(r.directives[2].value, "`");
  EXPECT_EQ(r.escape_token, '`');
  // Directive lines are not comments of the first instruction.
  EXPECT_TRUE(r.nodes[0].prev_comments.empty());

  // An unknown directive ends the directive block.
  r = MustParse("# foo=bar\n# escape=`\nFROM x\n");
  EXPECT_TRUE(r.directives.empty());
  EXPECT_EQ(r.escape_token, '\\');
  EXPECT_EQ(r.nodes[0].prev_comments, (std::vector<std::string>{"foo=bar", "escape=`"}));

  // Directives after the first instruction are plain comments.
  r = MustParse("FROM x\n# escape=`\nRUN a `\n");
  EXPECT_TRUE(r.directives.empty());
}

TEST(Parser, Comments) {
  ParseResult r =
      MustParse("# first\n# second\nARG A\n#\n# third\nFROM x\n\n# after blank\nRUN y\n");
  EXPECT_EQ(r.nodes[0].prev_comments, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(r.nodes[1].prev_comments, (std::vector<std::string>{"third"}));
  EXPECT_EQ(r.nodes[2].prev_comments, (std::vector<std::string>{"after blank"}));
}

TEST(Parser, Heredocs) {
  ParseResult r = MustParse(
      "FROM x\n"
      "RUN <<EOF\n"
      "echo $A\n"
      "EOF\n"
      "COPY <<one <<\"two\" /dest/\n"
      "1\n"
      "one\n"
      "2 $B\n"
      "two\n"
      "RUN <<-EOT bash\n"
      "\techo tabbed\n"
      "\tEOT\n"
      "RUN 3<<'Q' cat <&3\n"
      "x\n"
      "Q\n"
      "RUN [\"echo\", \"<<EOF\"]\n"
      "RUN echo '<<EOF' \"<<EOF\"\n"
      "ONBUILD RUN <<EOF\n"
      "hi\n"
      "EOF\n"
      "ADD <<E\"O\"F /f\n"
      "z\n"
      "EOF\n");
  ASSERT_EQ(r.nodes.size(), 9u);
  const Node& run = r.nodes[1];
  ASSERT_EQ(run.heredocs.size(), 1u);
  EXPECT_EQ(run.heredocs[0], (Heredoc{"EOF", 0, true, false, "echo $A\n"}));
  EXPECT_EQ(run.args, (std::vector<std::string>{"<<EOF"}));

  const Node& copy = r.nodes[2];
  ASSERT_EQ(copy.heredocs.size(), 2u);
  EXPECT_EQ(copy.heredocs[0], (Heredoc{"one", 0, true, false, "1\n"}));
  EXPECT_EQ(copy.heredocs[1], (Heredoc{"two", 0, false, false, "2 $B\n"}));
  EXPECT_EQ(copy.args, (std::vector<std::string>{"<<one", "<<\"two\"", "/dest/"}));

  const Node& chomp = r.nodes[3];
  ASSERT_EQ(chomp.heredocs.size(), 1u);
  EXPECT_EQ(chomp.heredocs[0], (Heredoc{"EOT", 0, true, true, "\techo tabbed\n"}));
  EXPECT_EQ(ChompHeredocContent(chomp.heredocs[0].content), "echo tabbed\n");

  const Node& fd = r.nodes[4];
  ASSERT_EQ(fd.heredocs.size(), 1u);
  EXPECT_EQ(fd.heredocs[0], (Heredoc{"Q", 3, false, false, "x\n"}));

  EXPECT_TRUE(r.nodes[5].heredocs.empty());   // exec form: no heredocs
  EXPECT_TRUE(r.nodes[6].heredocs.empty());   // quoted markers are not heredocs
  ASSERT_EQ(r.nodes[7].heredocs.size(), 1u);  // behind ONBUILD
  EXPECT_EQ(r.nodes[7].heredocs[0].content, "hi\n");
  ASSERT_EQ(r.nodes[8].heredocs.size(), 1u);  // partly quoted name: no expansion
  EXPECT_EQ(r.nodes[8].heredocs[0], (Heredoc{"EOF", 0, false, false, "z\n"}));
}

TEST(Parser, HeredocOnlyForRunCopyAdd) {
  ParseResult r = MustParse("FROM x\nCMD cat <<EOF\nEOF\n");
  ASSERT_EQ(r.nodes.size(), 3u);  // "EOF" is parsed as an (unknown) instruction
  EXPECT_TRUE(r.nodes[1].heredocs.empty());
  EXPECT_EQ(r.nodes[2].keyword, "EOF");
}

TEST(Parser, HeredocMarker) {
  struct Case {
    const char* word;
    bool is_heredoc;
    Heredoc expected;
  } cases[] = {
      {"<<EOF", true, {"EOF", 0, true, false, ""}},
      {"<<-EOF", true, {"EOF", 0, true, true, ""}},
      {"<<'EOF'", true, {"EOF", 0, false, false, ""}},
      {"<<\"EOF\"", true, {"EOF", 0, false, false, ""}},
      {"2<<EOF", true, {"EOF", 2, true, false, ""}},
      {"<<", false, {}},
      {"<<-", false, {}},
      {"a<<EOF", false, {}},
      {"<<EOF<<X", false, {}},
      {"<<E F", false, {}},
      {"<EOF", false, {}},
      {"EOF", false, {}},
  };
  for (const Case& c : cases) {
    Heredoc h;
    absl::StatusOr<bool> found = ParseHeredocMarker(c.word, &h);
    ASSERT_TRUE(found.ok()) << c.word;
    EXPECT_EQ(*found, c.is_heredoc) << c.word;
    if (c.is_heredoc) EXPECT_EQ(h, c.expected) << c.word;
  }
}

TEST(Parser, EmptyContinuationWarning) {
  ParseResult r = MustParse("FROM x\nRUN a \\\n\n  b\nRUN c\n");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0].short_message, "Empty continuation line found in: RUN a   b");
  EXPECT_EQ(r.warnings[0].location.start_line, 4);
  EXPECT_EQ(r.warnings[0].location.file, "Dockerfile");
}

struct ErrorCase {
  const char* name;
  const char* dockerfile;
  const char* message;
  int start_line;
  int end_line;
};

TEST(Parser, Errors) {
  const ErrorCase cases[] = {
      {"empty", "", "Dockerfile:1: file with no instructions", 1, 1},
      {"only comments", "# a\n# b\n\n", "Dockerfile:3: file with no instructions", 3, 3},
      {"duplicate directive", "# escape=`\n# escape=\\\nFROM x\n",
       "Dockerfile:2: only one escape parser directive can be used", 2, 2},
      {"bad escape", "# escape=x\nFROM x\n",
       "Dockerfile:1: invalid escape token 'x' does not match ` or \\", 1, 1},
      {"json non-string", "FROM x\nRUN [\"a\", \\\n 1]\n",
       "Dockerfile:2-3: when using JSON array syntax, arrays must be comprised of strings only", 2,
       3},
      {"json nested array", "FROM x\nCMD [[\"a\"]]\n",
       "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only", 2,
       2},
      {"env one word", "FROM x\nENV A\n", "Dockerfile:2: ENV must have two arguments", 2, 2},
      {"label missing =", "FROM x\nLABEL a=b c\n",
       "Dockerfile:2: Syntax error - can't find = in \"c\". Must be of the form: name=value", 2, 2},
      {"unterminated heredoc", "FROM x\nRUN <<EOF\necho\n", "Dockerfile:2-3: unterminated heredoc",
       2, 3},
      {"unterminated second heredoc", "FROM x\nRUN <<A <<B\na\nA\nb\n",
       "Dockerfile:2-5: unterminated heredoc", 2, 5},
  };
  for (const ErrorCase& c : cases) {
    absl::StatusOr<ParseResult> r = Parse(c.dockerfile, "Dockerfile");
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(r.status().message(), c.message) << c.name;
    std::optional<SourceRange> range = GetSourceRange(r.status());
    ASSERT_TRUE(range.has_value()) << c.name;
    EXPECT_EQ(range->file, "Dockerfile") << c.name;
    EXPECT_EQ(range->start_line, c.start_line) << c.name;
    EXPECT_EQ(range->end_line, c.end_line) << c.name;
  }
}

TEST(Parser, FileNameIsUsedInErrors) {
  absl::StatusOr<ParseResult> r = Parse("FROM x\nENV A\n", "sub/dir/Dockerfile.dev");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "sub/dir/Dockerfile.dev:2: ENV must have two arguments");
  EXPECT_EQ(GetSourceRange(r.status())->file, "sub/dir/Dockerfile.dev");
}

TEST(Parser, LineTooLong) {
  std::string df = "FROM x\nRUN " + std::string(70000, 'a') + "\n";
  absl::StatusOr<ParseResult> r = Parse(df);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("dockerfile line greater than max allowed size of 65535"),
            std::string::npos);
  EXPECT_EQ(GetSourceRange(r.status())->start_line, 2);
  std::string ok = "FROM x\nRUN " + std::string(65535 - 4, 'a') + "\n";
  EXPECT_TRUE(Parse(ok).ok());
}

TEST(Parser, HostileInputDoesNotCrash) {
  std::string deep = "FROM x\nRUN [" + std::string(20000, '[') + "\n";
  EXPECT_TRUE(Parse(deep).ok());  // not JSON: shell form
  std::string onbuild = "FROM x\n";
  for (int i = 0; i < 1000; ++i) onbuild += "ONBUILD ";
  onbuild += "RUN x\n";
  absl::StatusOr<ParseResult> r = Parse(onbuild);
  EXPECT_FALSE(r.ok());
}

// Runs BuildKit's own parser test corpus when the reference checkout is present.
TEST(Parser, BuildKitTestfiles) {
  const std::filesystem::path dir = "/work/ref/buildkit/frontend/dockerfile/parser/testfiles";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no BuildKit checkout at " << dir;
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    auto read = [](const std::filesystem::path& p) {
      std::ifstream in(p, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      return ss.str();
    };
    std::string df = read(entry.path() / "Dockerfile");
    std::string expected = read(entry.path() / "result");
    absl::StatusOr<ParseResult> r = Parse(df);
    ASSERT_TRUE(r.ok()) << entry.path() << ": " << r.status();
    EXPECT_EQ(DumpAll(*r), expected) << entry.path();
    ++checked;
  }
  EXPECT_GT(checked, 20);
  const std::filesystem::path negative =
      "/work/ref/buildkit/frontend/dockerfile/parser/testfiles-negative";
  for (const auto& entry : std::filesystem::directory_iterator(negative)) {
    std::ifstream in(entry.path() / "Dockerfile", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_FALSE(Parse(ss.str()).ok()) << entry.path();
  }
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::filesystem::path CorpusDir() {
  return std::filesystem::path(__FILE__).parent_path() / "testdata" / "parser";
}

// testdata/parser: BuildKit v0.11.6's view of each Dockerfile, recorded next to it.
TEST(ParserCorpus, MatchesBuildKit) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(CorpusDir())) {
    if (entry.path().extension() != ".Dockerfile") continue;
    const std::string base = entry.path().stem().string();
    SCOPED_TRACE(base);
    const std::string content = ReadFile(entry.path());
    absl::StatusOr<ParseResult> r = Parse(content, entry.path().filename().string());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(DumpAll(*r), ReadFile(CorpusDir() / (base + ".dump")));

    nlohmann::json want = nlohmann::json::parse(ReadFile(CorpusDir() / (base + ".buildkit.json")));
    ASSERT_EQ(want["nodes"].size(), r->nodes.size());
    for (size_t i = 0; i < r->nodes.size(); ++i) {
      const Node& n = r->nodes[i];
      const nlohmann::json& w = want["nodes"][i];
      SCOPED_TRACE(w["dump"].get<std::string>());
      EXPECT_EQ(n.start_line, w["start"].get<int>());
      EXPECT_EQ(n.end_line, w["end"].get<int>());
      EXPECT_EQ(n.original, w["original"].get<std::string>());
      ASSERT_EQ(n.heredocs.size(), w["heredocs"].size());
      for (size_t k = 0; k < n.heredocs.size(); ++k) {
        const nlohmann::json& h = w["heredocs"][k];
        EXPECT_EQ(n.heredocs[k].name, h["name"].get<std::string>());
        EXPECT_EQ(n.heredocs[k].expand, h["expand"].get<bool>());
        EXPECT_EQ(n.heredocs[k].chomp, h["chomp"].get<bool>());
        EXPECT_EQ(n.heredocs[k].file_descriptor, h["fd"].get<uint64_t>());
        EXPECT_EQ(n.heredocs[k].content, h["content"].get<std::string>());
      }
    }
    EXPECT_EQ(std::string(1, r->escape_token), want["escape"].get<std::string>());
    EXPECT_EQ(static_cast<int>(r->warnings.size()), want["warnings"].get<int>());

    absl::StatusOr<Dockerfile> df = ParseStages(*r);
    if (want.contains("instr_error")) {
      EXPECT_FALSE(df.ok());
      continue;
    }
    ASSERT_TRUE(df.ok()) << df.status();
    std::vector<std::string> stages;
    for (const Stage& s : df->stages) {
      stages.push_back(s.name + "|" + s.base_name + "|" + s.platform + "|" +
                       std::to_string(s.commands.size()));
    }
    EXPECT_EQ(stages, want["stages"].get<std::vector<std::string>>());
    EXPECT_EQ(df->meta_args.size(), want["meta_args"].get<size_t>());
    ++checked;
  }
  EXPECT_GE(checked, 15);
}

}  // namespace
}  // namespace kiln::frontends::dockerfile
