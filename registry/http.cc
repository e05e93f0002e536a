#include "registry/http.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "base/strings.h"

namespace kiln::registry {

namespace {
bool NameIs(const std::string& a, std::string_view b) {
  return absl::EqualsIgnoreCase(ToAbsl(a), ToAbsl(b));
}
}  // namespace

void HttpHeaders::Set(std::string_view name, std::string value) {
  Remove(name);
  items_.emplace_back(std::string(name), std::move(value));
}

void HttpHeaders::Remove(std::string_view name) {
  std::erase_if(items_, [&](const auto& item) { return NameIs(item.first, name); });
}

std::optional<std::string> HttpHeaders::Get(std::string_view name) const {
  for (const auto& [k, v] : items_) {
    if (NameIs(k, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> HttpHeaders::GetAll(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : items_) {
    if (NameIs(k, name)) out.push_back(v);
  }
  return out;
}

absl::StatusOr<size_t> StringViewBody::Read(char* buf, size_t n) {
  size_t take = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, take);
  pos_ += take;
  return take;
}

std::string DescribeRequest(std::string_view method, std::string_view url) {
  std::string_view rest = url;
  std::string scheme;
  if (size_t p = rest.find("://"); p != std::string_view::npos) {
    scheme = std::string(rest.substr(0, p + 3));
    rest.remove_prefix(p + 3);
  }
  size_t path_start = std::min(rest.find('/'), rest.size());
  std::string_view authority = rest.substr(0, path_start);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);  // userinfo is a credential
  }
  std::string_view path = rest.substr(path_start);
  path = path.substr(0, std::min(path.find_first_of("?#"), path.size()));
  return StrCat(method, " ", scheme, authority, path);
}

}  // namespace kiln::registry
