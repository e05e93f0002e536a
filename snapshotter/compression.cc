#include "snapshotter/compression.h"

#include <cstring>
#include <vector>

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include "base/oci.h"
#include "base/status.h"

namespace kiln::snapshotter {

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "uncompressed";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
  }
  return "unknown";
}

std::string_view OciLayerMediaType(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return oci::kMediaTypeLayerGzip;
    case Compression::kZstd:
      return oci::kMediaTypeLayerZstd;
    case Compression::kNone:
      break;
  }
  return oci::kMediaTypeLayer;
}

absl::StatusOr<Compression> CompressionOfMediaType(std::string_view mt) {
  if (mt == oci::kMediaTypeLayer || mt == oci::kMediaTypeDockerLayer ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar") {
    return Compression::kNone;
  }
  if (mt == oci::kMediaTypeLayerGzip || mt == oci::kMediaTypeDockerLayerGzip ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
      mt == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") {
    return Compression::kGzip;
  }
  if (mt == oci::kMediaTypeLayerZstd ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd") {
    return Compression::kZstd;
  }
  return absl::InvalidArgumentError(StrCat("unsupported layer media type ", Quote(mt)));
}

Compression DetectCompression(std::string_view head) {
  if (head.size() >= 2 && static_cast<uint8_t>(head[0]) == 0x1f &&
      static_cast<uint8_t>(head[1]) == 0x8b) {
    return Compression::kGzip;
  }
  if (head.size() >= 4 && std::memcmp(head.data(), "\x28\xb5\x2f\xfd", 4) == 0)
    return Compression::kZstd;
  return Compression::kNone;
}

namespace {

constexpr size_t kOutChunk = 256 << 10;

class NoneCompressor : public Compressor {
 public:
  absl::Status Write(const void* data, size_t n, ByteSink& out) override {
    return out.Write(data, n);
  }
  absl::Status Finish(ByteSink&) override { return absl::OkStatus(); }
};

class GzipCompressor : public Compressor {
 public:
  absl::Status Init(int level) {
    static const uint32_t kLevelBuf[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
                                         ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};
    if (level < 0 || level > 3)
      return absl::InvalidArgumentError(StrCat("gzip level ", level, " not in 0-3"));
    isal_deflate_init(&zs_);
    level_buf_.resize(kLevelBuf[level]);
    zs_.level = static_cast<uint32_t>(level);
    zs_.level_buf = level_buf_.data();
    zs_.level_buf_size = static_cast<uint32_t>(level_buf_.size());
    zs_.gzip_flag = IGZIP_GZIP_NO_HDR;  // we write a fixed header; igzip writes the trailer
    out_.resize(kOutChunk);
    return absl::OkStatus();
  }
  absl::Status Write(const void* data, size_t n, ByteSink& out) override {
    KILN_RETURN_IF_ERROR(Header(out));
    zs_.next_in = static_cast<uint8_t*>(const_cast<void*>(data));
    zs_.avail_in = static_cast<uint32_t>(n);
    zs_.end_of_stream = 0;
    while (zs_.avail_in > 0) KILN_RETURN_IF_ERROR(Step(out));
    return absl::OkStatus();
  }
  absl::Status Finish(ByteSink& out) override {
    KILN_RETURN_IF_ERROR(Header(out));
    zs_.avail_in = 0;
    zs_.end_of_stream = 1;
    while (zs_.internal_state.state != ZSTATE_END) KILN_RETURN_IF_ERROR(Step(out));
    return absl::OkStatus();
  }

 private:
  absl::Status Header(ByteSink& out) {
    if (header_done_) return absl::OkStatus();
    header_done_ = true;
    // magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
    static const uint8_t kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    return out.Write(kHeader, sizeof(kHeader));
  }
  absl::Status Step(ByteSink& out) {
    zs_.next_out = out_.data();
    zs_.avail_out = static_cast<uint32_t>(out_.size());
    int rc = isal_deflate(&zs_);
    if (rc != COMP_OK) return absl::InternalError(StrCat("igzip deflate failed: ", rc));
    size_t produced = out_.size() - zs_.avail_out;
    if (produced > 0) return out.Write(out_.data(), produced);
    return absl::OkStatus();
  }

  isal_zstream zs_{};
  std::vector<uint8_t> level_buf_;
  std::vector<uint8_t> out_;
  bool header_done_ = false;
};

class ZstdCompressor : public Compressor {
 public:
  ~ZstdCompressor() override { ZSTD_freeCCtx(cctx_); }
  absl::Status Init(int level, int threads) {
    cctx_ = ZSTD_createCCtx();
    if (cctx_ == nullptr) return absl::ResourceExhaustedError("zstd: cannot allocate a context");
    if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level))) {
      return absl::InvalidArgumentError(StrCat("zstd level ", level));
    }
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
    if (threads > 1) ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, threads);
    out_.resize(ZSTD_CStreamOutSize());
    return absl::OkStatus();
  }
  absl::Status Write(const void* data, size_t n, ByteSink& out) override {
    ZSTD_inBuffer in{data, n, 0};
    while (in.pos < in.size) KILN_RETURN_IF_ERROR(Step(&in, ZSTD_e_continue, out).status());
    return absl::OkStatus();
  }
  absl::Status Finish(ByteSink& out) override {
    ZSTD_inBuffer in{nullptr, 0, 0};
    for (;;) {
      KILN_ASSIGN_OR_RETURN(size_t left, Step(&in, ZSTD_e_end, out));
      if (left == 0) return absl::OkStatus();
    }
  }

 private:
  absl::StatusOr<size_t> Step(ZSTD_inBuffer* in, ZSTD_EndDirective mode, ByteSink& out) {
    ZSTD_outBuffer ob{out_.data(), out_.size(), 0};
    size_t rc = ZSTD_compressStream2(cctx_, &ob, in, mode);
    if (ZSTD_isError(rc))
      return absl::InternalError(StrCat("zstd compress: ", ZSTD_getErrorName(rc)));
    if (ob.pos > 0) KILN_RETURN_IF_ERROR(out.Write(out_.data(), ob.pos));
    return rc;
  }
  ZSTD_CCtx* cctx_ = nullptr;
  std::vector<uint8_t> out_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Compressor>> Compressor::Create(Compression c, int level,
                                                               int threads) {
  switch (c) {
    case Compression::kNone:
      return std::unique_ptr<Compressor>(std::make_unique<NoneCompressor>());
    case Compression::kGzip: {
      auto g = std::make_unique<GzipCompressor>();
      KILN_RETURN_IF_ERROR(g->Init(level));
      return std::unique_ptr<Compressor>(std::move(g));
    }
    case Compression::kZstd: {
      auto z = std::make_unique<ZstdCompressor>();
      KILN_RETURN_IF_ERROR(z->Init(level, threads));
      return std::unique_ptr<Compressor>(std::move(z));
    }
  }
  return absl::InvalidArgumentError("unknown compression");
}

// ---- decompression ----

class DecompressingSource::Engine {
 public:
  virtual ~Engine() = default;
  // Consumes from in/in_len (updating them), produces into out; returns bytes produced.
  virtual absl::StatusOr<size_t> Run(const uint8_t** in, size_t* in_len, uint8_t* out,
                                     size_t out_len) = 0;
  // Called at the end of the compressed input.
  virtual absl::Status AtEnd() = 0;
};

namespace {

class GunzipEngine : public DecompressingSource::Engine {
 public:
  GunzipEngine() : st_(std::make_unique<inflate_state>()) { Reset(); }
  absl::StatusOr<size_t> Run(const uint8_t** in, size_t* in_len, uint8_t* out,
                             size_t out_len) override {
    if (member_done_) {
      if (*in_len == 0) return 0;
      Reset();  // another gzip member follows
    }
    st_->next_in = const_cast<uint8_t*>(*in);
    st_->avail_in = static_cast<uint32_t>(std::min<size_t>(*in_len, UINT32_MAX));
    st_->next_out = out;
    st_->avail_out = static_cast<uint32_t>(std::min<size_t>(out_len, UINT32_MAX));
    uint32_t before_in = st_->avail_in;
    int rc = isal_inflate(st_.get());
    if (rc != ISAL_DECOMP_OK) {
      return absl::DataLossError(StrCat("gzip: corrupt layer data (igzip error ", rc, ")"));
    }
    size_t used = before_in - st_->avail_in;
    *in += used;
    *in_len -= used;
    size_t produced = out_len - st_->avail_out;
    if (st_->block_state == ISAL_BLOCK_FINISH) member_done_ = true;
    return produced;
  }
  absl::Status AtEnd() override {
    if (!member_done_) return absl::DataLossError("gzip: truncated layer data");
    return absl::OkStatus();
  }

 private:
  void Reset() {
    isal_inflate_init(st_.get());
    st_->crc_flag = ISAL_GZIP;
    member_done_ = false;
  }
  std::unique_ptr<inflate_state> st_;
  bool member_done_ = false;
};

class ZstdEngine : public DecompressingSource::Engine {
 public:
  ZstdEngine() : d_(ZSTD_createDCtx()) {
    // Bound the window (memory) a hostile frame can demand: 2^27 = 128 MiB, zstd's default cap.
    ZSTD_DCtx_setParameter(d_, ZSTD_d_windowLogMax, 27);
  }
  ~ZstdEngine() override { ZSTD_freeDCtx(d_); }
  absl::StatusOr<size_t> Run(const uint8_t** in, size_t* in_len, uint8_t* out,
                             size_t out_len) override {
    if (*in_len == 0 && last_ == 0) return 0;  // between frames: nothing pending
    ZSTD_inBuffer ib{*in, *in_len, 0};
    ZSTD_outBuffer ob{out, out_len, 0};
    size_t rc = ZSTD_decompressStream(d_, &ob, &ib);
    if (ZSTD_isError(rc))
      return absl::DataLossError(StrCat("zstd: corrupt layer data: ", ZSTD_getErrorName(rc)));
    last_ = rc;
    *in += ib.pos;
    *in_len -= ib.pos;
    return ob.pos;
  }
  absl::Status AtEnd() override {
    if (last_ != 0) return absl::DataLossError("zstd: truncated layer data");
    return absl::OkStatus();
  }

 private:
  ZSTD_DCtx* d_;
  size_t last_ = 1;
};

}  // namespace

DecompressingSource::DecompressingSource(ByteSource& compressed, int64_t max_compressed)
    : in_(compressed), max_(max_compressed), buf_(1 << 20, '\0') {}
DecompressingSource::~DecompressingSource() = default;

absl::Status DecompressingSource::Fill() {
  size_t want = buf_.size();
  if (max_ >= 0) want = static_cast<size_t>(std::min<int64_t>(want, max_ - consumed_ + 1));
  size_t got = 0;
  while (got < want) {
    KILN_ASSIGN_OR_RETURN(size_t n, in_.Read(buf_.data() + got, want - got));
    if (n == 0) {
      in_eof_ = true;
      break;
    }
    got += n;
    if (got >= 4) break;  // enough for detection; keep latency low
  }
  consumed_ += static_cast<int64_t>(got);
  if (max_ >= 0 && consumed_ > max_) {
    return absl::DataLossError(StrCat("layer is larger than the expected ", max_, " bytes"));
  }
  hash_.Update(buf_.data(), got);
  buf_pos_ = 0;
  buf_len_ = got;
  return absl::OkStatus();
}

absl::StatusOr<size_t> DecompressingSource::Read(void* out, size_t n) {
  if (!started_) {
    started_ = true;
    KILN_RETURN_IF_ERROR(Fill());
    compression_ = DetectCompression(std::string_view(buf_.data(), buf_len_));
    if (compression_ == Compression::kGzip) engine_ = std::make_unique<GunzipEngine>();
    if (compression_ == Compression::kZstd) engine_ = std::make_unique<ZstdEngine>();
  }
  for (;;) {
    if (buf_pos_ == buf_len_ && !in_eof_) KILN_RETURN_IF_ERROR(Fill());
    if (!engine_) {
      size_t k = std::min(n, buf_len_ - buf_pos_);
      std::memcpy(out, buf_.data() + buf_pos_, k);
      buf_pos_ += k;
      if (k > 0 || in_eof_) return k;
      continue;
    }
    const uint8_t* p = reinterpret_cast<const uint8_t*>(buf_.data()) + buf_pos_;
    size_t avail = buf_len_ - buf_pos_;
    KILN_ASSIGN_OR_RETURN(size_t produced, engine_->Run(&p, &avail, static_cast<uint8_t*>(out), n));
    buf_pos_ = buf_len_ - avail;
    if (produced > 0) return produced;
    if (buf_pos_ == buf_len_ && in_eof_) {
      KILN_RETURN_IF_ERROR(engine_->AtEnd());
      return 0;
    }
  }
}

}  // namespace kiln::snapshotter
