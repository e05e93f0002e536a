#include "frontends/dockerfile/dockerignore.h"

#include "base/pattern_match.h"
#include "frontends/dockerfile/go_compat.h"

namespace kiln::frontends::dockerfile {

std::vector<std::string> ParseDockerignore(std::string_view content) {
  std::vector<std::string> patterns;
  bool first = true;
  while (!content.empty()) {
    size_t nl = content.find('\n');
    std::string_view line = content.substr(0, nl);
    content.remove_prefix(nl == std::string_view::npos ? content.size() : nl + 1);
    // bufio.ScanLines drops a trailing '\r'.
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    first = false;
    if (!line.empty() && line[0] == '#') continue;
    std::string_view pattern = go::TrimSpace(line);
    if (pattern.empty()) continue;
    const bool invert = pattern[0] == '!';
    if (invert) pattern = go::TrimSpace(pattern.substr(1));
    std::string cleaned;
    if (!pattern.empty()) {
      cleaned = CleanPath(pattern);
      if (cleaned.size() > 1 && cleaned[0] == '/') cleaned.erase(0, 1);
    }
    patterns.push_back(invert ? "!" + cleaned : cleaned);
  }
  return patterns;
}

}  // namespace kiln::frontends::dockerfile
