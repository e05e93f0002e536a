#include "frontends/dockerfile/shell_lex.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kiln::frontends::dockerfile {
namespace {

constexpr const char* kError = "<error>";

struct WordCase {
  const char* input;
  const char* expected;  // kError for an error
};

const EnvLookup& BaseEnv() {
  static const EnvLookup env =
      EnvFromList({"PWD=/home", "SHELL=bash", "KOREAN=\uD55C\uAD6D\uC5B4", "NULL="});
  return env;
}

void CheckWords(const ShellLex& lex, const std::vector<WordCase>& cases, const EnvLookup& env) {
  for (const WordCase& c : cases) {
    absl::StatusOr<std::string> r = lex.ProcessWord(c.input, env);
    if (std::string(c.expected) == kError) {
      EXPECT_FALSE(r.ok()) << c.input << " gave " << (r.ok() ? *r : "");
    } else {
      ASSERT_TRUE(r.ok()) << c.input << ": " << r.status();
      EXPECT_EQ(*r, c.expected) << c.input;
    }
  }
}

// Behaviour documented by BuildKit's envVarTest (PWD=/home SHELL=bash NULL="").
TEST(ShellLex, QuotingEscapingAndExpansion) {
  CheckWords(ShellLex('\\'),
             {
                 {"hello", "hello"},
                 {"he'll'o", "hello"},
                 {"he'llo", kError},
                 {"he\\'llo", "he'llo"},
                 {"he\\\\'llo", kError},
                 {"abc\\tdef", "abctdef"},
                 {"\"abc\\tdef\"", "abc\\tdef"},
                 {"\"abc\\\\tdef\"", "abc\\tdef"},
                 {"'abc\\tdef'", "abc\\tdef"},
                 {"hello\\", "hello"},
                 {"hello\\\\", "hello\\"},
                 {"\"hello", kError},
                 {"\"hello\\\"", kError},
                 {"\"hel'lo\"", "hel'lo"},
                 {"'hello", kError},
                 {"'hello\\'", "hello\\"},
                 {"'hello\\there'", "hello\\there"},
                 {"'hello\\\\there'", "hello\\\\there"},
                 {"\"''\"", "''"},
                 {"$.", "$."},
                 {"he$1x", "hex"},
                 {"he$.x", "he$.x"},
                 {"he$pwd.", "he."},
                 {"he$PWD", "he/home"},
                 {"he\\$PWD", "he$PWD"},
                 {"he\\\\$PWD", "he\\/home"},
                 {"\"he\\$PWD\"", "he$PWD"},
                 {"\"he\\\\$PWD\"", "he\\/home"},
                 {"\\${}", "${}"},
                 {"\\${}aaa", "${}aaa"},
                 {"he\\${}", "he${}"},
                 {"he\\${}xx", "he${}xx"},
                 {"${}", kError},
                 {"${}aaa", kError},
                 {"he${}", kError},
                 {"he${}xx", kError},
                 {"he${hi}", "he"},
                 {"he${hi}xx", "hexx"},
                 {"he${PWD}", "he/home"},
                 {"he${.}", kError},
                 {"he${XXX:-000}xx", "he000xx"},
                 {"he${PWD:-000}xx", "he/homexx"},
                 {"he${XXX:-$PWD}xx", "he/homexx"},
                 {"he${XXX:-${PWD:-yyy}}xx", "he/homexx"},
                 {"he${XXX:-${YYY:-yyy}}xx", "heyyyxx"},
                 {"he${XXX:YYY}", kError},
                 {"he${XXX?}", kError},
                 {"he${XXX:?}", kError},
                 {"he${PWD?}", "he/home"},
                 {"he${PWD:?}", "he/home"},
                 {"he${NULL?}", "he"},
                 {"he${NULL:?}", kError},
                 {"he${XXX:+${PWD}}xx", "hexx"},
                 {"he${PWD:+${XXX}}xx", "hexx"},
                 {"he${PWD:+${SHELL}}xx", "hebashxx"},
                 {"he${XXX:+000}xx", "hexx"},
                 {"he${PWD:+000}xx", "he000xx"},
                 {"'he${XX}'", "he${XX}"},
                 {"\"he${PWD}\"", "he/home"},
                 {"\"he'$PWD'\"", "he'/home'"},
                 {"\"$PWD\"", "/home"},
                 {"'$PWD'", "$PWD"},
                 {"'\\$PWD'", "\\$PWD"},
                 {"'\"hello\"'", "\"hello\""},
                 {"'he\\$PWD'", "he\\$PWD"},
                 {"he${PWD", kError},
                 {"he${PWD:=000}xx", kError},
                 {"he${PWD:+${PWD}:}xx", "he/home:xx"},
                 {"he${XXX:-\\$PWD:}xx", "he$PWD:xx"},
                 {"he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"},
                 {"\uC548\uB155\uD558\uC138\uC694", "\uC548\uB155\uD558\uC138\uC694"},
                 {"\uC548'\uB155'\uD558", "\uC548\uB155\uD558"},
                 {"\uC548\uB155$KOREAN", "\uC548\uB155\uD55C\uAD6D\uC5B4"},
                 {"\uC548\uB155${hi}xx", "\uC548\uB155xx"},
                 {"${{aaa}", kError},
                 {"${aaa}}", "}"},
                 {"${aaa", kError},
                 {"${{aaa:-bbb}", kError},
                 {"${aaa:-bbb}}", "bbb}"},
                 {"${aaa:-bbb", kError},
                 {"${aaa:-bbb}", "bbb"},
                 {"${aaa:-${bbb:-ccc}}", "ccc"},
                 {"${aaa:-bbb ${foo}", kError},
                 {"${aaa:-bbb {foo}", "bbb {foo"},
                 {"${:}", kError},
                 {"${:-bbb}", kError},
                 {"${:+bbb}", kError},
             },
             BaseEnv());
}

// Positional and special parameters are never set in a Dockerfile.
TEST(ShellLex, PositionalAndSpecialParameters) {
  std::vector<std::pair<std::string, std::string>> cases;
  for (std::string p : {"1", "9", "999", "001", "@", "*", "#", "?", "-", "$", "!", "0"}) {
    cases.push_back({"$" + p, ""});
    cases.push_back({"${" + p + "}", ""});
    cases.push_back({"${" + p + ":+bbb}", ""});
    cases.push_back({"${" + p + ":-bbb}", "bbb"});
    cases.push_back({"${" + p + ":-bbb}aaa", "bbbaaa"});
  }
  cases.push_back({"$999aaa", "aaa"});
  cases.push_back({"$001aaa", "aaa"});
  cases.push_back({"$@@@", "@@"});
  cases.push_back({"$@aaa", "aaa"});
  for (const auto& [input, expected] : cases) {
    absl::StatusOr<std::string> r = ShellLex('\\').ProcessWord(input, BaseEnv());
    ASSERT_TRUE(r.ok()) << input << ": " << r.status();
    EXPECT_EQ(*r, expected) << input;
  }
}

TEST(ShellLex, BacktickEscape) {
  CheckWords(ShellLex('`'),
             {
                 {"a`$PWD", "a$PWD"},
                 {"a\\b", "a\\b"},
                 {"c:\\windows\\$PWD", "c:\\windows\\/home"},
                 {"\"a`\"b\"", "a\"b"},
                 {"\"a\\\"", "a\\"},
                 {"a``b", "a`b"},
                 {"${XXX:-`}}", "}"},
             },
             BaseEnv());
}

TEST(ShellLex, UnsetVsEmptyOperators) {
  const EnvLookup env = EnvFromMap({{"SET", "v"}, {"EMPTY", ""}});
  CheckWords(ShellLex('\\'),
             {
                 {"${SET-d}", "v"},    {"${EMPTY-d}", ""},      {"${UNSET-d}", "d"},
                 {"${SET:-d}", "v"},   {"${EMPTY:-d}", "d"},    {"${UNSET:-d}", "d"},
                 {"${SET+a}", "a"},    {"${EMPTY+a}", "a"},     {"${UNSET+a}", ""},
                 {"${SET:+a}", "a"},   {"${EMPTY:+a}", ""},     {"${UNSET:+a}", ""},
                 {"${SET?m}", "v"},    {"${EMPTY?m}", ""},      {"${UNSET?m}", kError},
                 {"${SET:?m}", "v"},   {"${EMPTY:?m}", kError}, {"${UNSET:?m}", kError},
                 {"${SET=x}", kError}, {"${SET:=x}", kError},
             },
             env);
}

TEST(ShellLex, MandatoryVariableMessages) {
  ShellLex lex('\\');
  const EnvLookup set = EnvFromList({"VAR=plain", "ARG=x"});
  const EnvLookup empty = EnvFromList({"VAR=", "ARG=x"});
  const EnvLookup unset = EnvFromList({"ARG=x"});
  EXPECT_EQ(*lex.ProcessWord("${VAR:?message here$ARG}", set), "plain");
  absl::StatusOr<std::string> r = lex.ProcessWord("${VAR:?message here$ARG}", empty);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "failed to process \"${VAR:?message here$ARG}\": VAR: message herex");
  r = lex.ProcessWord("${VAR?}", unset);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "failed to process \"${VAR?}\": VAR: is not allowed to be unset");
  r = lex.ProcessWord("${VAR:?}", empty);
  EXPECT_EQ(r.status().message(),
            "failed to process \"${VAR:?}\": VAR: is not allowed to be empty");
  EXPECT_EQ(*lex.ProcessWord("${VAR?message here$ARG}", empty), "");
  r = lex.ProcessWord("${VAR", set);
  EXPECT_EQ(r.status().message(), "failed to process \"${VAR\": syntax error: missing '}'");
  r = lex.ProcessWord("${}", set);
  EXPECT_EQ(r.status().message(), "failed to process \"${}\": syntax error: bad substitution");
  r = lex.ProcessWord("'abc", set);
  EXPECT_EQ(r.status().message(),
            "failed to process \"'abc\": unexpected end of statement while looking for matching "
            "single-quote");
}

TEST(ShellLex, PrefixSuffixPatterns) {
  struct Case {
    const char* input;
    std::map<std::string, std::string> env;
    const char* expected;
  } cases[] = {
      {"${FOO#()[]{\\}^$.\\*\\?|\\\\}", {{"FOO", "()[]{}^$.*?|\\x"}}, "x"},
      {"${FOO%%\\**}", {{"FOO", "xx**"}}, "xx"},
      {"${FOO#*x*y}", {{"FOO", "xxyy"}}, "y"},
      {"${FOO#*}", {{"FOO", "xxyy"}}, "xxyy"},
      {"${FOO##*}", {{"FOO", "xxyy"}}, ""},
      {"${FOO#$BAR}", {{"FOO", "xxyy"}, {"BAR", "x"}}, "xyy"},
      {"${FOO#$BAR}", {{"FOO", "xxyy"}, {"BAR", ""}}, "xxyy"},
      {"${FOO#}", {{"FOO", "xxyy"}}, "xxyy"},
      {"${FOO##*x}", {{"FOO", "xxyy"}}, "yy"},
      {"${FOO#*x}", {{"FOO", "xxyy"}}, "xyy"},
      {"${FOO##}", {{"FOO", "xxyy"}}, "xxyy"},
      {"${FOO#?\\?}", {{"FOO", "???y"}}, "?y"},
      {"${ABC:-.}${FOO%x}${ABC:-.}", {{"FOO", "xxyy"}}, ".xxyy."},
      {"${FOO%%\\**\\*}", {{"FOO", "a***yy*"}}, "a"},
      {"${FOO%}", {{"FOO", "xxyy"}}, "xxyy"},
      {"${FOO%%$BAR}", {{"FOO", "xxyy"}, {"BAR", ""}}, "xxyy"},
      {"${FOO%.*}", {{"FOO", "archive.tar.gz"}}, "archive.tar"},
      {"${FOO%%.*}", {{"FOO", "archive.tar.gz"}}, "archive"},
      {"${FOO#*/}", {{"FOO", "a/b/c"}}, "b/c"},
      {"${FOO##*/}", {{"FOO", "a/b/c"}}, "c"},
      {"${FOO%/*}", {{"FOO", "a/b/c"}}, "a/b"},
      {"${FOO%%/*}", {{"FOO", "a/b/c"}}, "a"},
      {"${FOO#v}", {{"FOO", "v1.2.3"}}, "1.2.3"},
      {"${FOO%\u00e9}", {{"FOO", "caf\u00e9"}}, "caf"},
      {"${FOO#?}", {{"FOO", "\u00e9t\u00e9"}}, "t\u00e9"},
      {"${UNSET#x}", {}, ""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> r = ShellLex('\\').ProcessWord(c.input, EnvFromMap(c.env));
    ASSERT_TRUE(r.ok()) << c.input << ": " << r.status();
    EXPECT_EQ(*r, c.expected) << c.input;
  }
  for (const char* bad :
       {"${FOO:#}", "${FOO:##}", "${FOO:%}", "${FOO:%%}", "${FOO#\\x}", "${FOO%a\\}"}) {
    EXPECT_FALSE(ShellLex('\\').ProcessWord(bad, EnvFromMap({{"FOO", "xxyy"}})).ok()) << bad;
  }
}

TEST(ShellLex, Replacement) {
  struct Case {
    const char* input;
    std::map<std::string, std::string> env;
    const char* expected;
  } cases[] = {
      {"${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
       {{"FOO", "/foo*/*/*.txt"}, {"NEEDLE", "\\*/"}},
       "/foo.*/*.txt - /foo..*.txt"},
      {"${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
       {{"FOO", "/tmp/tmp/bar.txt"}, {"NEEDLE", "/tmp"}},
       "/tmp/bar.txt - /bar.txt"},
      {"${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
       {{"FOO", "/a/foo/b/c.txt"}, {"NEEDLE", "/?/"}, {"REPLACEMENT", "/"}},
       "/foo/b/c.txt - /foo/c.txt"},
      {"${FOO/$NEEDLE/$REPLACEMENT}",
       {{"FOO", "http://google.de"}, {"NEEDLE", "http://"}, {"REPLACEMENT", "https://"}},
       "https://google.de"},
      {"${FOO//\\//\\/}", {{"FOO", "/tmp/foo.txt"}}, "\\/tmp\\/foo.txt"},
      {"${FOO/$BAR/ww}", {{"FOO", "xxyy"}, {"BAR", ""}}, "wwxxyy"},
      {"${FOO///}", {{"FOO", "xxyy"}}, "xxyy"},
      {"${FOO///}", {}, ""},
      {"${FOO/x*/z}", {{"FOO", "axbxc"}}, "az"},
      {"${FOO//x/-}", {{"FOO", "axbxc"}}, "a-b-c"},
      {"${FOO//?/-}", {{"FOO", "ab"}}, "--"},
      {"${FOO//*/-}", {{"FOO", "ab"}}, "-"},
      {"${FOO//b/$$0}", {{"FOO", "abc"}}, "a0c"},
      {"${FOO//b/\\$0}", {{"FOO", "abc"}}, "a\\bc"},
      {"${FOO/b/\\$0}", {{"FOO", "abc"}}, "a\\$0c"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> r = ShellLex('\\').ProcessWord(c.input, EnvFromMap(c.env));
    ASSERT_TRUE(r.ok()) << c.input << ": " << r.status();
    EXPECT_EQ(*r, c.expected) << c.input;
  }
  for (const char* bad : {"${FOO//ww}", "${FOO//}", "${FOO/a/b", "${FOO/\\q/b}"}) {
    EXPECT_FALSE(ShellLex('\\').ProcessWord(bad, EnvFromMap({{"FOO", "xxyy"}})).ok()) << bad;
  }
}

TEST(ShellLex, MatchedAndUnmatched) {
  struct Case {
    const char* input;
    std::map<std::string, std::string> env;
    const char* expected;
    std::set<std::string> matched;
    std::set<std::string> unmatched;
  } cases[] = {
      {"x", {{"DUMMY", "dummy"}}, "x", {}, {}},
      {"x ${UNUSED}", {{"DUMMY", "dummy"}}, "x ", {}, {"UNUSED"}},
      {"x ${FOO}", {{"FOO", "y"}}, "x y", {"FOO"}, {}},
      {"${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
       {{"FOO", "xxx"}, {"BAR", ""}},
       "xxx  ccc",
       {"FOO", "BAR"},
       {"BAZ"}},
      {"${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
       {{"FOO", "xxx"}, {"BAR", ""}},
       "xxx bbb ccc",
       {"FOO", "BAR"},
       {"BAZ"}},
      {"${FOO:-}", {{"FOO", "xxx"}}, "xxx", {"FOO"}, {}},
      {"${FOO:-}", {}, "", {}, {"FOO"}},
      {"${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
       {{"FOO", "xxx"}, {"BAR", ""}},
       "aaa bbb ",
       {"FOO", "BAR"},
       {"BAZ"}},
      {"${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
       {{"FOO", "xxx"}, {"BAR", ""}},
       "aaa  ",
       {"FOO", "BAR"},
       {"BAZ"}},
      {"${FOO?aaa}", {{"FOO", "xxx"}}, "xxx", {"FOO"}, {}},
      {"'$QUOTED' \"$DQ\"", {{"DQ", "d"}}, "$QUOTED d", {"DQ"}, {}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ShellWordResult> r =
        ShellLex('\\').ProcessWordWithMatches(c.input, EnvFromMap(c.env));
    ASSERT_TRUE(r.ok()) << c.input << ": " << r.status();
    EXPECT_EQ(r->result, c.expected) << c.input;
    EXPECT_EQ(r->matched, c.matched) << c.input;
    EXPECT_EQ(r->unmatched, c.unmatched) << c.input;
  }
}

TEST(ShellLex, PlatformStyleRelease) {
  const char* release =
      "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
  ShellLex lex('\\');
  EXPECT_EQ(*lex.ProcessWord(release, EnvFromMap({{"VERSION", "v1.2.3"},
                                                  {"TARGETOS", "linux"},
                                                  {"TARGETARCH", "arm"},
                                                  {"TARGETVARIANT", "v7"}})),
            "something-v1.2.3.linux-arm-v7.tar.gz");
  EXPECT_EQ(*lex.ProcessWord(release, EnvFromMap({{"VERSION", "v1.2.3"},
                                                  {"TARGETOS", "linux"},
                                                  {"TARGETARCH", "arm64"},
                                                  {"TARGETVARIANT", ""}})),
            "something-v1.2.3.linux-arm64.tar.gz");
  EXPECT_EQ(
      *lex.ProcessWord(
          release,
          EnvFromMap({{"VERSION", "v1.2.3"}, {"TARGETOS", "linux"}, {"TARGETARCH", "arm64"}})),
      "something-v1.2.3.linux-arm64.tar.gz");
}

// BuildKit's wordsTest: ProcessWords splitting.
TEST(ShellLex, ProcessWords) {
  struct Case {
    const char* input;
    std::vector<std::string> env;
    std::vector<std::string> expected;  // {"<error>"} for an error
  } cases[] = {
      {"hello", {}, {"hello"}},
      {"hello${hi}bye", {}, {"hellobye"}},
      {"hello${hi}bye", {"hi=hi"}, {"hellohibye"}},
      {"hello${space}bye", {"space=abc  def"}, {"helloabc", "defbye"}},
      {"hello\"${space}\"bye", {"space=abc  def"}, {"helloabc  defbye"}},
      {"hello \"${space}\"bye", {"space=abc  def"}, {"hello", "abc  defbye"}},
      {"hello${leading}def", {"leading=  ab c"}, {"hello", "ab", "cdef"}},
      {"hello\"${leading}\" def", {"leading=  ab c"}, {"hello  ab c", "def"}},
      {"hello\"${leading}\"", {"leading=  ab c"}, {"hello  ab c"}},
      {"hello${leading}", {"leading=  ab c"}, {"hello", "ab", "c"}},
      {"hello${trailing}", {"trailing=ab c   "}, {"helloab", "c"}},
      {"hello${trailing}d", {"trailing=ab c   "}, {"helloab", "c", "d"}},
      {"hello\"${trailing}\"d", {"trailing=ab c   "}, {"helloab c   d"}},
      {"hel\"lo${trailing}\"", {"trailing=ab c   "}, {"helloab c   "}},
      {"hello\" there  \"", {}, {"hello there  "}},
      {"hello there     ", {}, {"hello", "there"}},
      {"hello\\ there", {}, {"hello there"}},
      {"hello\" there", {}, {"<error>"}},
      {"hello\\\" there", {}, {"hello\"", "there"}},
      {"hello\"\\\\there\"", {}, {"hello\\there"}},
      {"hello\"\\there\"", {}, {"hello\\there"}},
      {"hello'\\\\there'", {}, {"hello\\\\there"}},
      {"hello'\\there'", {}, {"hello\\there"}},
      {"hello'$there'", {}, {"hello$there"}},
      {"80/tcp 443", {}, {"80/tcp", "443"}},
      {"a ${X:-b c} d", {}, {"a", "b", "c", "d"}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<std::string>> r =
        ShellLex('\\').ProcessWords(c.input, EnvFromList(c.env));
    if (c.expected == std::vector<std::string>{"<error>"}) {
      EXPECT_FALSE(r.ok()) << c.input;
      continue;
    }
    ASSERT_TRUE(r.ok()) << c.input << ": " << r.status();
    EXPECT_EQ(*r, c.expected) << c.input;
  }
}

TEST(ShellLex, Options) {
  ShellLexOptions raw;
  raw.raw_quotes = true;
  raw.skip_unset_env = true;
  ShellLex lex('\\', raw);
  const EnvLookup env = EnvFromMap({{"A", "1"}});
  EXPECT_EQ(*lex.ProcessWord("'$A' \"$A\" $B ${B} ${B:-x}", env), "'$A' \"1\" $B ${B} ${B:-x}");

  ShellLexOptions no_quotes;
  no_quotes.skip_process_quotes = true;
  EXPECT_EQ(*ShellLex('\\', no_quotes).ProcessWord("echo '$A' \"$A\"", env), "echo '1' \"1\"");

  ShellLexOptions raw_escapes;
  raw_escapes.raw_escapes = true;
  EXPECT_EQ(*ShellLex('\\', raw_escapes).ProcessWord("a\\ b\\$A", env), "a\\ b\\$A");
}

TEST(ShellLex, EnvFromListLastWins) {
  EnvLookup env = EnvFromList({"foo=bar", "car=hat", "car=bike", "bare"});
  EXPECT_EQ(env("foo"), "bar");
  EXPECT_EQ(env("car"), "bike");
  EXPECT_EQ(env("bare"), "");
  EXPECT_EQ(env("none"), std::nullopt);
}

TEST(ShellLex, DeepNestingFailsCleanly) {
  std::string word;
  for (int i = 0; i < 5000; ++i) word += "${A:-";
  word += "x";
  for (int i = 0; i < 5000; ++i) word += "}";
  EXPECT_FALSE(ShellLex('\\').ProcessWord(word, EnvFromList({})).ok());
  std::string ok;
  for (int i = 0; i < 50; ++i) ok += "${A:-";
  ok += "x";
  for (int i = 0; i < 50; ++i) ok += "}";
  EXPECT_EQ(*ShellLex('\\').ProcessWord(ok, EnvFromList({})), "x");
}

}  // namespace
}  // namespace kiln::frontends::dockerfile
