#include "snapshotter/tar_writer.h"

#include <cstdio>
#include <cstring>
#include <map>

#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/status.h"
#include "base/strings.h"

namespace kiln::snapshotter {
namespace {

constexpr uint64_t kMax7 = 07777777;        // 8-byte octal field
constexpr int64_t kMax11 = 077777777777LL;  // 12-byte octal field

void PutOctal(char* field, size_t width, uint64_t value) {
  // width-1 digits and a NUL, zero padded.
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1),
                static_cast<unsigned long long>(value));
}

void PutString(char* field, size_t width, std::string_view s) {
  std::memcpy(field, s.data(), std::min(width, s.size()));
}

std::string PaxRecord(std::string_view key, std::string_view value) {
  size_t body = 1 + key.size() + 1 + value.size() + 1;  // " key=value\n"
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  std::string out = std::to_string(len);
  out.push_back(' ');
  out.append(key);
  out.push_back('=');
  out.append(value);
  out.push_back('\n');
  return out;
}

std::string UstarBlock(const TarHeader& h, std::string_view name, std::string_view linkname,
                       char type, int64_t size, uint64_t uid, uint64_t gid, int64_t mtime) {
  std::string b(512, '\0');
  char* p = b.data();
  PutString(p, 100, name);
  PutOctal(p + 100, 8, h.mode & 07777);
  PutOctal(p + 108, 8, uid);
  PutOctal(p + 116, 8, gid);
  PutOctal(p + 124, 12, static_cast<uint64_t>(size));
  PutOctal(p + 136, 12, static_cast<uint64_t>(mtime));
  std::memset(p + 148, ' ', 8);
  p[156] = type;
  PutString(p + 157, 100, linkname);
  std::memcpy(p + 257,
              "ustar\0"
              "00",
              8);
  if (type == '3' || type == '4') {
    PutOctal(p + 329, 8, std::min<uint64_t>(h.devmajor, kMax7));
    PutOctal(p + 337, 8, std::min<uint64_t>(h.devminor, kMax7));
  }
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  std::snprintf(p + 148, 8, "%06o", sum);
  p[155] = ' ';
  return b;
}

}  // namespace

std::string EncodeTarHeader(const TarHeader& h) {
  std::map<std::string, std::string> pax;
  std::string name = h.name;
  std::string linkname = h.linkname;
  if (name.size() > 100) {
    pax["path"] = name;
    name.resize(100);
  }
  if (linkname.size() > 100) {
    pax["linkpath"] = linkname;
    linkname.resize(100);
  }
  uint64_t uid = h.uid, gid = h.gid;
  if (uid > kMax7) {
    pax["uid"] = std::to_string(uid);
    uid = 0;
  }
  if (gid > kMax7) {
    pax["gid"] = std::to_string(gid);
    gid = 0;
  }
  int64_t size = h.size;
  if (size > kMax11) {
    pax["size"] = std::to_string(size);
    size = 0;
  }
  int64_t mtime = h.mtime;
  if (mtime < 0 || mtime > kMax11) {
    pax["mtime"] = std::to_string(mtime);
    mtime = 0;
  }
  for (const auto& [k, v] : h.xattrs) pax[StrCat("SCHILY.xattr.", k)] = v;

  std::string out;
  if (!pax.empty()) {
    std::string records;
    for (const auto& [k, v] : pax) records += PaxRecord(k, v);
    std::string base = h.name;
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (size_t slash = base.rfind('/'); slash != std::string::npos) base = base.substr(slash + 1);
    std::string pax_name = StrCat("PaxHeaders.0/", base).substr(0, 100);
    TarHeader ph;
    ph.mode = 0644;
    out += UstarBlock(ph, pax_name, "", 'x', static_cast<int64_t>(records.size()), 0, 0,
                      std::clamp<int64_t>(h.mtime, 0, kMax11));
    out += records;
    out.append(TarPadding(static_cast<int64_t>(records.size())), '\0');
  }
  out += UstarBlock(h, name, linkname, h.type, size, uid, gid, mtime);
  return out;
}

absl::StatusOr<std::string> ReadLinkAt(int dirfd, const std::string& name, const struct stat& st) {
  std::string t(static_cast<size_t>(st.st_size) + 1, '\0');
  ssize_t n = ::readlinkat(dirfd, name.c_str(), t.data(), t.size());
  if (n < 0) return ErrnoStatus(StrCat("readlink ", Quote(name)));
  t.resize(static_cast<size_t>(n));
  return t;
}

absl::StatusOr<bool> SetTarEntryType(int dirfd, const std::string& name, const struct stat& st,
                                     TarHeader* h) {
  switch (st.st_mode & S_IFMT) {
    case S_IFDIR:
      h->type = '5';
      h->name.push_back('/');
      return true;
    case S_IFLNK: {
      h->type = '2';
      KILN_ASSIGN_OR_RETURN(h->linkname, ReadLinkAt(dirfd, name, st));
      return true;
    }
    case S_IFCHR:
    case S_IFBLK:
      h->type = S_ISCHR(st.st_mode) ? '3' : '4';
      h->devmajor = major(st.st_rdev);
      h->devminor = minor(st.st_rdev);
      return true;
    case S_IFIFO:
      h->type = '6';
      return true;
    case S_IFREG:
      h->type = '0';
      h->size = st.st_size;
      return true;
    default:
      return false;  // sockets have no tar form
  }
}

}  // namespace kiln::snapshotter
