#include "registry/auth.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"
#include "registry/errors.h"

namespace kiln::registry {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string Lower(std::string_view s) { return absl::AsciiStrToLower(ToAbsl(s)); }

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

absl::Duration RefreshMargin(absl::Duration lifetime) {
  return std::clamp(lifetime / 4, absl::Seconds(5), absl::Seconds(30));
}

}  // namespace

std::vector<AuthChallenge> ParseAuthChallenges(const std::vector<std::string>& values) {
  std::vector<AuthChallenge> out;
  for (const std::string& s : values) {
    size_t i = 0;
    const size_t n = s.size();
    bool have_current = false;
    while (i < n) {
      while (i < n && (IsSpace(s[i]) || s[i] == ',')) ++i;
      size_t start = i;
      while (i < n && !IsSpace(s[i]) && s[i] != ',' && s[i] != '=') ++i;
      std::string token = s.substr(start, i - start);
      if (token.empty()) {
        if (i < n) ++i;  // stray '=': skip it rather than loop
        continue;
      }
      size_t j = i;
      while (j < n && IsSpace(s[j])) ++j;
      if (have_current && j < n && s[j] == '=') {
        i = j + 1;
        while (i < n && IsSpace(s[i])) ++i;
        std::string value;
        if (i < n && s[i] == '"') {
          ++i;
          while (i < n && s[i] != '"') {
            if (s[i] == '\\' && i + 1 < n) ++i;
            value += s[i++];
          }
          if (i < n) ++i;  // closing quote
        } else {
          size_t vstart = i;
          while (i < n && s[i] != ',' && !IsSpace(s[i])) ++i;
          value = s.substr(vstart, i - vstart);
        }
        out.back().params[Lower(token)] = std::move(value);
      } else {
        out.push_back(AuthChallenge{Lower(token), {}});
        have_current = true;
      }
    }
  }
  return out;
}

std::string RepositoryScope(std::string_view repository, std::string_view actions) {
  return StrCat("repository:", repository, ":", actions);
}

Authenticator::Authenticator(std::string origin, std::string host, HttpTransport& transport,
                             Clock& clock, ConnectionOptions connection)
    : origin_(std::move(origin)),
      host_(std::move(host)),
      transport_(transport),
      clock_(clock),
      connection_(connection) {}

bool Authenticator::knows_challenge() const {
  std::lock_guard<std::mutex> lock(mu_);
  return challenge_.has_value();
}

void Authenticator::MarkOpen() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!challenge_) challenge_ = AuthChallenge{};
}

int Authenticator::tokens_fetched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_fetched_;
}

std::string Authenticator::CacheKey(const Credential& credential,
                                    const std::set<std::string>& scopes) {
  return StrCat(credential.Fingerprint(), "\n", absl::StrJoin(scopes, " "));
}

std::shared_ptr<Authenticator::TokenEntry> Authenticator::Entry(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = tokens_[key];
  if (!slot) slot = std::make_shared<TokenEntry>();
  return slot;
}

std::vector<std::string> Authenticator::OnUnauthorized(const HttpHeaders& headers,
                                                       const Credential& credential,
                                                       const std::set<std::string>& scopes,
                                                       const std::string& sent_authorization) {
  std::vector<AuthChallenge> challenges = ParseAuthChallenges(headers.GetAll("WWW-Authenticate"));
  const AuthChallenge* pick = nullptr;
  for (const auto& c : challenges) {
    if (c.scheme == "bearer") {
      pick = &c;
      break;
    }
    if (c.scheme == "basic" && pick == nullptr) pick = &c;
  }
  std::vector<std::string> asked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pick != nullptr) challenge_ = *pick;
  }
  if (pick != nullptr) {
    if (auto it = pick->params.find("scope"); it != pick->params.end()) {
      for (absl::string_view s : absl::StrSplit(it->second, ' ', absl::SkipEmpty())) {
        asked.emplace_back(s);
      }
    }
  }
  std::shared_ptr<TokenEntry> entry = Entry(CacheKey(credential, scopes));
  std::lock_guard<std::mutex> lock(entry->mu);
  // Several requests may fail with the same stale token; only the first forgets it.
  if (sent_authorization.empty() || sent_authorization == StrCat("Bearer ", entry->token)) {
    entry->refresh_at = absl::InfinitePast();
  }
  return asked;
}

absl::StatusOr<std::string> Authenticator::Header(const Credential& credential,
                                                  const std::set<std::string>& scopes,
                                                  const CancelToken& cancel) {
  std::optional<AuthChallenge> challenge;
  {
    std::lock_guard<std::mutex> lock(mu_);
    challenge = challenge_;
  }
  if (!challenge || challenge->scheme.empty()) return std::string();
  if (challenge->scheme == "basic") {
    if (credential.username.empty() && credential.password.empty()) return std::string();
    return StrCat("Basic ",
                  absl::Base64Escape(StrCat(credential.username, ":", credential.password)));
  }
  if (challenge->scheme != "bearer") return std::string();
  if (!credential.registry_token.empty()) return StrCat("Bearer ", credential.registry_token);

  std::shared_ptr<TokenEntry> entry = Entry(CacheKey(credential, scopes));
  std::lock_guard<std::mutex> lock(entry->mu);
  if (clock_.Now() < entry->refresh_at) return StrCat("Bearer ", entry->token);
  KILN_ASSIGN_OR_RETURN(Token token, FetchToken(*challenge, credential, scopes, cancel));
  entry->token = std::move(token.value);
  entry->refresh_at = clock_.Now() + token.lifetime - RefreshMargin(token.lifetime);
  return StrCat("Bearer ", entry->token);
}

absl::StatusOr<Authenticator::Token> Authenticator::FetchToken(const AuthChallenge& challenge,
                                                               const Credential& credential,
                                                               const std::set<std::string>& scopes,
                                                               const CancelToken& cancel) {
  auto param = [&](const char* name) {
    auto it = challenge.params.find(name);
    return it == challenge.params.end() ? std::string() : it->second;
  };
  const std::string realm = param("realm");
  const std::string service = param("service");
  const std::string what = StrCat("get a token for ", Quote(host_), " from ",
                                  Quote(DescribeRequest("", realm).substr(1)));
  if (!absl::StartsWith(realm, "https://") && !absl::StartsWith(realm, "http://")) {
    return absl::UnauthenticatedError(StrCat("authenticate to ", Quote(host_),
                                             ": the registry's Bearer challenge has no "
                                             "http(s) realm"));
  }

  HttpRequest req;
  req.connection = connection_;
  req.follow_redirects = true;
  req.max_body_bytes = 1 << 20;
  std::string form;
  StringViewBody form_body(form);
  const std::string refresh_token = credential.RefreshToken();
  if (!refresh_token.empty()) {
    // OAuth2 refresh-token grant: Docker identity tokens and ACR refresh tokens.
    req.method = "POST";
    req.url = realm;
    form = StrCat("grant_type=refresh_token&service=", PercentEncode(service),
                  "&client_id=kiln&refresh_token=", PercentEncode(refresh_token));
    if (!scopes.empty()) StrAppend(&form, "&scope=", PercentEncode(absl::StrJoin(scopes, " ")));
    form_body = StringViewBody(form);
    req.body = &form_body;
    req.headers.Set("Content-Type", "application/x-www-form-urlencoded");
  } else {
    std::string url = realm;
    char sep = realm.find('?') == std::string::npos ? '?' : '&';
    auto add = [&](std::string_view k, std::string_view v) {
      StrAppend(&url, std::string(1, sep), k, "=", PercentEncode(v));
      sep = '&';
    };
    if (!service.empty()) add("service", service);
    for (const std::string& s : scopes) add("scope", s);
    if (!credential.username.empty()) add("account", credential.username);
    req.method = "GET";
    req.url = url;
    if (!credential.username.empty() || !credential.password.empty()) {
      req.headers.Set("Authorization",
                      StrCat("Basic ", absl::Base64Escape(
                                           StrCat(credential.username, ":", credential.password))));
    }
  }

  absl::StatusOr<HttpResponse> resp = transport_.Do(req, cancel);
  if (!resp.ok()) return RedactSecrets(Annotate(resp.status(), what), credential.Secrets());
  if (resp->status != 200) {
    absl::Status err = ErrorFromResponse(req.method, realm, *resp);
    if (resp->status == 400 || resp->status == 401 || resp->status == 403) {
      err = absl::Status(absl::StatusCode::kUnauthenticated, err.message());
    }
    return RedactSecrets(Annotate(err, what), credential.Secrets());
  }
  nlohmann::json doc = nlohmann::json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    return absl::UnauthenticatedError(StrCat(what, ": the answer is not a JSON object"));
  }
  Token token;
  for (const char* key : {"token", "access_token"}) {
    auto it = doc.find(key);
    if (it != doc.end() && it->is_string() && !it->get<std::string>().empty()) {
      token.value = it->get<std::string>();
      break;
    }
  }
  if (token.value.empty()) {
    return absl::UnauthenticatedError(StrCat(what, ": the answer holds no token"));
  }
  int64_t expires_in = 0;
  if (auto it = doc.find("expires_in"); it != doc.end() && it->is_number_integer()) {
    expires_in = it->get<int64_t>();
  }
  token.lifetime = absl::Seconds(expires_in > 0 ? expires_in : 60);
  std::lock_guard<std::mutex> lock(mu_);
  ++tokens_fetched_;
  return token;
}

}  // namespace kiln::registry
