// Test helpers: build tar streams entry by entry (including hostile ones), list tars, compare
// trees.  Not part of the library.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/strings.h"
#include "gtest/gtest.h"
#include "snapshotter/compression.h"
#include "snapshotter/fs_util.h"
#include "snapshotter/tar_writer.h"

namespace kiln::snapshotter::testing {

class TarBuilder {
 public:
  TarBuilder& File(const std::string& name, const std::string& data, uint32_t mode = 0644,
                   Xattrs x = {}) {
    TarHeader h;
    h.name = name;
    h.type = '0';
    h.mode = mode;
    h.size = static_cast<int64_t>(data.size());
    h.mtime = 1700000000;
    h.xattrs = std::move(x);
    return Raw(h, data);
  }
  TarBuilder& Dir(const std::string& name, uint32_t mode = 0755) {
    TarHeader h;
    h.name = name;
    h.type = '5';
    h.mode = mode;
    h.mtime = 1700000000;
    return Raw(h, "");
  }
  TarBuilder& Symlink(const std::string& name, const std::string& target) {
    TarHeader h;
    h.name = name;
    h.type = '2';
    h.mode = 0777;
    h.linkname = target;
    h.mtime = 1700000000;
    return Raw(h, "");
  }
  TarBuilder& Hardlink(const std::string& name, const std::string& target) {
    TarHeader h;
    h.name = name;
    h.type = '1';
    h.linkname = target;
    h.mtime = 1700000000;
    return Raw(h, "");
  }
  TarBuilder& Device(const std::string& name, char type, uint32_t major, uint32_t minor) {
    TarHeader h;
    h.name = name;
    h.type = type;
    h.mode = 0600;
    h.devmajor = major;
    h.devminor = minor;
    h.mtime = 1700000000;
    return Raw(h, "");
  }
  TarBuilder& Raw(const TarHeader& h, const std::string& data) {
    out_ += EncodeTarHeader(h);
    out_ += data;
    out_.append(TarPadding(static_cast<int64_t>(data.size())), '\0');
    return *this;
  }
  std::string Build() const { return out_ + std::string(kTarTrailerSize, '\0'); }

 private:
  std::string out_;
};

inline std::string Compress(const std::string& data, Compression c, int level = -1) {
  if (level < 0) level = c == Compression::kZstd ? 3 : 1;
  auto comp = Compressor::Create(c, level);
  EXPECT_TRUE(comp.ok());
  StringSink sink;
  EXPECT_TRUE((*comp)->Write(data.data(), data.size(), sink).ok());
  EXPECT_TRUE((*comp)->Finish(sink).ok());
  return sink.out;
}

struct TarEntryInfo {
  std::string name;
  mode_t type;
  std::string link;
  std::string data;
  int64_t mtime;
  bool operator==(const TarEntryInfo&) const = default;
};

// Lists a (possibly compressed) tar with libarchive.
inline std::vector<TarEntryInfo> ListTar(const std::string& blob) {
  std::vector<TarEntryInfo> out;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_zstd(a);
  EXPECT_EQ(archive_read_open_memory(a, blob.data(), blob.size()), ARCHIVE_OK)
      << archive_error_string(a);
  archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    TarEntryInfo info{archive_entry_pathname(e), archive_entry_filetype(e), "", "",
                      archive_entry_mtime(e)};
    if (archive_entry_hardlink(e)) info.link = kiln::StrCat("hard:", archive_entry_hardlink(e));
    if (archive_entry_symlink(e)) info.link = kiln::StrCat("sym:", archive_entry_symlink(e));
    char buf[8192];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
      info.data.append(buf, static_cast<size_t>(n));
    out.push_back(std::move(info));
  }
  archive_read_free(a);
  return out;
}

inline std::vector<std::string> Names(const std::vector<TarEntryInfo>& entries) {
  std::vector<std::string> out;
  for (auto& e : entries) out.push_back(e.name);
  return out;
}

// A textual description of a tree: one line per entry with type, mode, owner, size, mtime
// (non-directories), link target, device, xattrs, content hash and hardlink group.
inline void DescribeTree(int dirfd, const std::string& rel, std::map<std::string, std::string>& out,
                         std::map<std::pair<dev_t, ino_t>, std::string>& links) {
  auto names = ListSorted(dirfd, rel);
  ASSERT_TRUE(names.ok()) << names.status();
  for (const std::string& n : *names) {
    struct stat st;
    ASSERT_EQ(fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW), 0);
    std::string path = rel.empty() ? n : rel + "/" + n;
    std::string d = kiln::StrCat(std::to_string(st.st_mode), " ", st.st_uid, ":", st.st_gid);
    if (!S_ISDIR(st.st_mode)) kiln::StrAppend(&d, " mtime=", st.st_mtim.tv_sec);
    if (S_ISREG(st.st_mode)) {
      kiln::StrAppend(&d, " size=", st.st_size);
      int fd = openat(dirfd, n.c_str(), O_RDONLY | O_NOFOLLOW);
      std::string content;
      char buf[65536];
      ssize_t r;
      while ((r = read(fd, buf, sizeof(buf))) > 0) content.append(buf, static_cast<size_t>(r));
      close(fd);
      kiln::StrAppend(&d, " sha=", Digest::Sha256Of(content).hex().substr(0, 12));
      if (st.st_nlink > 1) {
        auto [it, fresh] = links.try_emplace({st.st_dev, st.st_ino}, path);
        kiln::StrAppend(&d, " link-group=", it->second);
      }
    }
    if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t r = readlinkat(dirfd, n.c_str(), buf, sizeof(buf));
      kiln::StrAppend(&d, " -> ", std::string(buf, static_cast<size_t>(r)));
    }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
      kiln::StrAppend(&d, " dev=", major(st.st_rdev), ",", minor(st.st_rdev));
    auto x = ListXattrs(dirfd, n);
    ASSERT_TRUE(x.ok());
    for (auto& [k, v] : *x) kiln::StrAppend(&d, " ", k, "=", v);
    out[path] = d;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      DescribeTree(sub, path, out, links);
      close(sub);
    }
  }
}

inline std::map<std::string, std::string> DescribeTree(const std::string& root) {
  std::map<std::string, std::string> out;
  std::map<std::pair<dev_t, ino_t>, std::string> links;
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY);
  EXPECT_GE(fd, 0);
  DescribeTree(fd, "", out, links);
  close(fd);
  return out;
}

}  // namespace kiln::snapshotter::testing
