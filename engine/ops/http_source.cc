#include "engine/ops/http_source.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "engine/ops/source_op.h"
#include "engine/worker/worker.h"
#include "llb/caps.h"
#include "nlohmann/json.hpp"

namespace kiln::engine {
namespace {

constexpr char kDownloadName[] = "download";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// A name usable as one path component, or "".
std::string SafeBase(std::string_view name) {
  while (!name.empty() && name.back() == '/') name.remove_suffix(1);
  size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name = name.substr(slash + 1);
  if (name.empty() || name == "." || name == ".." || name.find('\0') != std::string_view::npos) {
    return "";
  }
  return std::string(name);
}

// The decoded path of an http(s) URL.
std::string UrlPath(std::string_view url) {
  size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return "";
  rest = rest.substr(slash);
  size_t end = rest.find_first_of("?#");
  if (end != std::string_view::npos) rest = rest.substr(0, end);
  return PercentDecode(rest);
}

// The filename parameter of a Content-Disposition value (RFC 6266, with RFC 5987's filename*).
std::string DispositionFilename(std::string_view value) {
  std::string plain, extended;
  size_t pos = value.find(';');
  while (pos != std::string_view::npos) {
    size_t next = pos + 1;
    bool quoted = false;
    size_t end = next;
    for (; end < value.size(); ++end) {
      if (value[end] == '"') quoted = !quoted;
      if (value[end] == ';' && !quoted) break;
    }
    std::string param = Trim(value.substr(next, end - next));
    size_t eq = param.find('=');
    if (eq != std::string::npos) {
      std::string key = Lower(Trim(std::string_view(param).substr(0, eq)));
      std::string val = Trim(std::string_view(param).substr(eq + 1));
      if (val.size() >= 2 && val.front() == '"' && val.back() == '"') {
        std::string unq;
        for (size_t i = 1; i + 1 < val.size(); ++i) {
          if (val[i] == '\\' && i + 2 < val.size()) ++i;
          unq.push_back(val[i]);
        }
        val = unq;
      }
      if (key == "filename") plain = val;
      if (key == "filename*") {
        size_t q = val.find("''");
        if (q != std::string::npos) extended = PercentDecode(val.substr(q + 2));
      }
    }
    pos = end < value.size() ? end : std::string_view::npos;
  }
  return extended.empty() ? plain : extended;
}

std::string FileName(const std::string& url, const std::string& manual,
                     const std::string* disposition) {
  if (!manual.empty()) return manual;
  if (disposition) {
    std::string f = DispositionFilename(*disposition);
    if (!f.empty() && f.back() != '/') {
      if (std::string base = SafeBase(f); !base.empty()) return base;
    }
  }
  if (std::string base = SafeBase(UrlPath(url)); !base.empty()) return base;
  return kDownloadName;
}

// Go's http.ParseTime: RFC 1123, RFC 850 and ANSI C formats, in UTC.
std::optional<int64_t> ParseHttpTime(const std::string& text) {
  for (const char* fmt :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    struct tm tm;
    std::memset(&tm, 0, sizeof(tm));
    const char* end = ::strptime(text.c_str(), fmt, &tm);
    if (end != nullptr && *end == '\0') return static_cast<int64_t>(::timegm(&tm));
  }
  return std::nullopt;
}

// "https://user:pass@host/x" -> "https://xxxxx@host/x" for messages.
std::string RedactUrl(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  size_t host_start = scheme + 3;
  size_t host_end = url.find_first_of("/?#", host_start);
  size_t at = url.rfind('@', host_end == std::string::npos ? url.size() : host_end);
  if (at == std::string::npos || at < host_start) return url;
  return StrCat(url.substr(0, host_start), "xxxxx", url.substr(at));
}

absl::Status CopyFileTo(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return ErrnoStatus(StrCat("open ", Quote(from)));
  UniqueFd src(in);
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) return ErrnoStatus(StrCat("create ", Quote(to)));
  UniqueFd dst(out);
  for (;;) {
    ssize_t n = ::copy_file_range(src.get(), nullptr, dst.get(), nullptr, 1 << 30, 0);
    if (n < 0) return ErrnoStatus(StrCat("copy to ", Quote(to)));
    if (n == 0) return absl::OkStatus();
  }
}

class Sha512Hasher {
 public:
  Sha512Hasher() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha512(), nullptr); }
  ~Sha512Hasher() { EVP_MD_CTX_free(ctx_); }
  Sha512Hasher(const Sha512Hasher&) = delete;
  Sha512Hasher& operator=(const Sha512Hasher&) = delete;
  void Update(const void* p, size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string FinishText() {
    unsigned char out[64];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, out, &n);
    return StrCat("sha512:", HexEncode(out, n));
  }

 private:
  EVP_MD_CTX* ctx_;
};

struct Download {
  TempDir dir;
  std::string file;  // inside dir
  Digest sha256;
  std::string checksum_text;  // in the algorithm of the wanted checksum
  std::string last_modified;
  std::optional<std::string> disposition;
  int64_t size = 0;
};

struct Transfer {
  int fd = -1;
  Sha256Hasher sha256;
  std::unique_ptr<Sha512Hasher> sha512;
  int64_t bytes = 0;
  absl::Status write_error;
  std::map<std::string, std::string> headers;  // of the last response, lower-case names
  const CancelToken* cancel = nullptr;
  ProgressTask* task = nullptr;
  int64_t reported = 0;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  for (size_t off = 0; off < len;) {
    ssize_t w = ::write(t->fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      t->write_error = ErrnoStatus("write download");
      return 0;
    }
    off += static_cast<size_t>(w);
  }
  t->sha256.Update(data, len);
  if (t->sha512) t->sha512->Update(data, len);
  t->bytes += static_cast<int64_t>(len);
  if (t->task && t->bytes - t->reported >= (4 << 20)) {
    t->reported = t->bytes;
    t->task->Update(t->bytes);
  }
  return len;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->headers.clear();  // a new response (after a redirect or a 100 Continue)
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    t->headers[Lower(Trim(line.substr(0, colon)))] = Trim(line.substr(colon + 1));
  }
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->cancel->cancelled() ? 1 : 0;
}

class HttpSourceOp : public Op {
 public:
  HttpSourceOp(const OpEnv& env, std::string url, std::optional<Digest> checksum,
               std::string filename, int64_t perm, int64_t uid, int64_t gid)
      : worker_(env.worker),
        url_(std::move(url)),
        checksum_(std::move(checksum)),
        filename_(std::move(filename)),
        perm_(perm),
        uid_(uid),
        gid_(gid) {}

  absl::StatusOr<CacheMap> GetCacheMap(const OpContext& ctx) override {
    CacheMap cm;
    if (checksum_) {
      cm.digest = SourceCacheDigest(Key(FileName(url_, filename_, nullptr), checksum_->str(), ""));
      return cm;
    }
    KILN_ASSIGN_OR_RETURN(Download d, Fetch(ctx));
    const std::string* disp = d.disposition ? &*d.disposition : nullptr;
    cm.digest =
        SourceCacheDigest(Key(FileName(url_, filename_, disp), d.sha256.str(), d.last_modified));
    download_ = std::move(d);
    return cm;
  }

  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                              std::span<const ResultRef>) override {
    if (!download_) {
      KILN_ASSIGN_OR_RETURN(Download d, Fetch(ctx));
      download_ = std::move(d);
    }
    Download& d = *download_;
    if (checksum_ && d.checksum_text != checksum_->str()) {
      std::string got = d.checksum_text;
      download_.reset();  // a retry downloads again
      return absl::DataLossError(StrCat("download ", Quote(RedactUrl(url_)),
                                        ": digest mismatch: expected ", checksum_->str(), ", got ",
                                        got));
    }
    const std::string* disp = d.disposition ? &*d.disposition : nullptr;
    const std::string name = FileName(url_, filename_, disp);
    int64_t mtime = 0;
    if (!d.last_modified.empty()) mtime = ParseHttpTime(d.last_modified).value_or(0);
    auto ref = WriteNewSnapshot(*worker_, StrCat("http url ", RedactUrl(url_)),
                                [&](const std::string& dir) { return Place(d, dir, name, mtime); });
    if (!ref.ok()) return Annotate(ref.status(), StrCat("download ", Quote(RedactUrl(url_))));
    download_.reset();
    return std::vector<ResultRef>{std::move(*ref)};
  }

 private:
  // BuildKit's formatCacheKey: the JSON Go marshals for that struct, as a digest string.
  std::string Key(const std::string& filename, const std::string& checksum,
                  const std::string& last_modified) const {
    nlohmann::ordered_json j;
    j["Filename"] = filename;
    j["Perm"] = perm_;
    j["UID"] = uid_;
    j["GID"] = gid_;
    j["Checksum"] = checksum;
    if (!last_modified.empty()) j["LastModTime"] = last_modified;
    return Digest::Sha256Of(j.dump()).str();
  }

  absl::StatusOr<Download> Fetch(const OpContext& ctx) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    const std::string what = StrCat("download ", Quote(RedactUrl(url_)));
    Download d;
    KILN_ASSIGN_OR_RETURN(d.dir, TempDir::Create("http-", worker_->TempRoot()));
    d.file = d.dir.path() + "/data";
    int fd = ::open(d.file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoStatus(StrCat(what, ": create ", Quote(d.file)));
    UniqueFd out(fd);

    ProgressTask task(ctx.progress, StrCat("downloading ", RedactUrl(url_)));
    Transfer t;
    t.fd = out.get();
    t.cancel = &ctx.cancel;
    t.task = &task;
    if (checksum_ && checksum_->algorithm() == "sha512")
      t.sha512 = std::make_unique<Sha512Hasher>();
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) return absl::InternalError(StrCat(what, ": curl_easy_init failed"));
    char errbuf[CURL_ERROR_SIZE] = {0};
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");  // as Go's transport asks
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kiln");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_ABORTED_BY_CALLBACK && ctx.cancel.cancelled()) {
      KILN_RETURN_IF_ERROR(ctx.cancel.Check());
    }
    if (!t.write_error.ok()) return Annotate(t.write_error, what);
    if (rc != CURLE_OK) {
      return absl::UnavailableError(
          StrCat(what, ": ", errbuf[0] ? errbuf : curl_easy_strerror(rc)));
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 400) {
      auto code = status == 404 ? absl::StatusCode::kNotFound : absl::StatusCode::kUnavailable;
      return absl::Status(code, StrCat(what, ": invalid response status ", status));
    }
    if (::fsync(out.get()) != 0) return ErrnoStatus(StrCat(what, ": fsync"));
    d.size = t.bytes;
    d.sha256 = t.sha256.Finish();
    d.checksum_text = t.sha512 ? t.sha512->FinishText() : d.sha256.str();
    if (auto it = t.headers.find("last-modified"); it != t.headers.end()) {
      d.last_modified = it->second;
    }
    if (auto it = t.headers.find("content-disposition"); it != t.headers.end()) {
      d.disposition = it->second;
    }
    task.Update(t.bytes);
    return d;
  }

  absl::Status Place(const Download& d, const std::string& dir, const std::string& name,
                     int64_t mtime) const {
    const std::string target = StrCat(dir, "/", name);
    if (::rename(d.file.c_str(), target.c_str()) != 0) {
      if (errno != EXDEV) return ErrnoStatus(StrCat("move download to ", Quote(name)));
      KILN_RETURN_IF_ERROR(CopyFileTo(d.file, target));
    }
    int fd = ::open(target.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(StrCat("open ", Quote(name)));
    UniqueFd f(fd);
    if (::fchown(f.get(), static_cast<uid_t>(uid_), static_cast<gid_t>(gid_)) != 0) {
      return ErrnoStatus(StrCat("chown ", Quote(name)));
    }
    if (::fchmod(f.get(), static_cast<mode_t>(perm_)) != 0) {
      return ErrnoStatus(StrCat("chmod ", Quote(name)));
    }
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    if (::futimens(f.get(), ts) != 0) return ErrnoStatus(StrCat("set times of ", Quote(name)));
    return absl::OkStatus();
  }

  Worker* worker_;
  std::string url_;
  std::optional<Digest> checksum_;
  std::string filename_;
  int64_t perm_, uid_, gid_;
  std::optional<Download> download_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Op>> NewHttpSourceOp(const LlbOp& op, const OpEnv& env) {
  const pb::SourceOp& src = op.op.source();
  KILN_ASSIGN_OR_RETURN(auto parts, SplitSourceIdentifier(src.identifier()));
  SourceAttrs attrs(src);
  if (parts.second.empty()) return attrs.Invalid("identifier", "an http source needs a URL");
  std::string url = StrCat(parts.first, "://", parts.second);
  std::optional<Digest> checksum;
  if (const std::string* v = attrs.Find(llb::kAttrHTTPChecksum); v && !v->empty()) {
    auto d = Digest::Parse(*v);
    if (!d.ok()) return attrs.Invalid(llb::kAttrHTTPChecksum, "not a sha256 or sha512 digest");
    checksum = *d;
  }
  std::string filename = attrs.Get(llb::kAttrHTTPFilename);
  if (!filename.empty() && SafeBase(filename) != filename) {
    return attrs.Invalid(llb::kAttrHTTPFilename, "must be a single file name");
  }
  KILN_ASSIGN_OR_RETURN(int64_t perm, attrs.Int(llb::kAttrHTTPPerm, 0));
  if (perm < 0 || perm > 07777) return attrs.Invalid(llb::kAttrHTTPPerm, "not a file mode");
  if (perm == 0) perm = 0600;
  KILN_ASSIGN_OR_RETURN(int64_t uid, attrs.Int(llb::kAttrHTTPUID, 0));
  KILN_ASSIGN_OR_RETURN(int64_t gid, attrs.Int(llb::kAttrHTTPGID, 0));
  if (uid < 0 || uid > 0xfffffffeLL) return attrs.Invalid(llb::kAttrHTTPUID, "out of range");
  if (gid < 0 || gid > 0xfffffffeLL) return attrs.Invalid(llb::kAttrHTTPGID, "out of range");
  return std::unique_ptr<Op>(
      new HttpSourceOp(env, std::move(url), std::move(checksum), filename, perm, uid, gid));
}

}  // namespace kiln::engine
