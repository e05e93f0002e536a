// .dockerignore files (BuildKit's frontend/dockerfile/dockerignore.ReadAll).
//
// One pattern per line; lines starting with '#' are comments; blank lines are skipped; a
// leading '!' re-includes; each pattern is trimmed, cleaned like a path (so "./a/" is "a") and
// a leading '/' is dropped.  The result feeds kiln::PatternMatcher (base/pattern_match.h) as the
// exclude patterns of the build context.  Which file is used (`<Dockerfile>.dockerignore`
// before `.dockerignore`) is the converter's decision.
//
// Thread-safety: pure function.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln::frontends::dockerfile {

// Returns the patterns of a .dockerignore file's content, in order.  Never fails: every line
// is either a comment, blank, or a pattern (pattern syntax is checked when the patterns are
// compiled by PatternMatcher::Create).
std::vector<std::string> ParseDockerignore(std::string_view content);

}  // namespace kiln::frontends::dockerfile
