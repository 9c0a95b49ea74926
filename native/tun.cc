// mptun's TUN binding (N-API). Three jobs, kept small on purpose:
//  - open(): open /dev/net/tun and attach to (or create) a TUN, optionally inside another network
//    namespace (a TUN belongs to the namespace /dev/net/tun was opened in);
//  - Poller: a uv_poll on the non-blocking fd that, per wakeup, reads up to kBatch packets into
//    one reused buffer and calls JS once with the count (never the libuv threadpool: that costs
//    about 10 us a packet);
//  - Poller.write(): one call from JS writes many packets (writev of virtio-net header + data)
//    and stops at EAGAIN so JS can apply backpressure and wait for writability.
// The TypeScript side (src/stack/device/tun-device.ts) validates arguments and maps errno to
// mptun's error classes; errors thrown here carry `code` (e.g. 'EBUSY'), `errno` and `syscall`.
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include <napi.h>

#include <string>

namespace {

constexpr uint32_t kBatch = 64;  // packets per wakeup, also the size of the lengths table

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall) {
  const char* name = strerrorname_np(err);
  Napi::Error e = Napi::Error::New(env, syscall + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

// Closes an fd at scope exit unless released.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

// Moves the calling thread into a network namespace and back again at scope exit.
class NetnsSwitch {
 public:
  // Returns 0 or an errno; `what` names the failing step.
  int enter(const std::string& path, const char** what) {
    orig_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig_ < 0) {
      *what = "open /proc/thread-self/ns/net";
      return errno;
    }
    FdGuard target{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (target.fd < 0) {
      *what = "open netns";
      return errno;
    }
    if (setns(target.fd, CLONE_NEWNET) < 0) {
      *what = "setns";
      return errno;
    }
    entered_ = true;
    return 0;
  }
  ~NetnsSwitch() {
    // Staying in the wrong namespace would silently break everything after: fail loudly.
    if (entered_ && setns(orig_, CLONE_NEWNET) < 0) Napi::Error::Fatal("mptun tun", "setns back failed");
    if (orig_ >= 0) close(orig_);
  }

 private:
  int orig_ = -1;
  bool entered_ = false;
};

// open({ name, vnetHdr, offload, netns, mtu, up, disableIpv6 }) -> { fd, name, created, mtu }
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object opts = info[0].As<Napi::Object>();
  std::string name = opts.Get("name").As<Napi::String>();
  bool vnetHdr = opts.Get("vnetHdr").ToBoolean();
  bool offload = opts.Get("offload").ToBoolean();
  std::string netns = opts.Get("netns").IsString() ? opts.Get("netns").As<Napi::String>().Utf8Value() : "";
  uint32_t mtu = opts.Get("mtu").IsNumber() ? opts.Get("mtu").As<Napi::Number>().Uint32Value() : 0;
  bool up = opts.Get("up").ToBoolean();
  bool disableIpv6 = opts.Get("disableIpv6").ToBoolean();
  if (name.empty() || name.size() >= IFNAMSIZ) throw Napi::TypeError::New(env, "bad interface name");

  NetnsSwitch ns;
  const char* what = "";
  if (!netns.empty()) {
    if (int err = ns.enter(netns, &what)) throw ErrnoError(env, err, what);
  }
  bool existed = if_nametoindex(name.c_str()) != 0;

  FdGuard tun{open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)};
  if (tun.fd < 0) throw ErrnoError(env, errno, "open /dev/net/tun");
  struct ifreq ifr = {};
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0);
  if (ioctl(tun.fd, TUNSETIFF, &ifr) < 0) throw ErrnoError(env, errno, "TUNSETIFF");
  // Always set (0 = none): a persistent TUN keeps the offloads a previous user turned on.
  unsigned offloads = offload ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 : 0;
  if (ioctl(tun.fd, TUNSETOFFLOAD, offloads) < 0) throw ErrnoError(env, errno, "TUNSETOFFLOAD");
  std::string actual(ifr.ifr_name);

  // Router solicitations and the like would otherwise land in the TUN (DESIGN.md §3). The sysctl
  // is missing when IPv6 is off altogether, which is fine.
  if (disableIpv6) {
    std::string path = "/proc/sys/net/ipv6/conf/" + actual + "/disable_ipv6";
    FdGuard sysctl{open(path.c_str(), O_WRONLY | O_CLOEXEC)};
    if (sysctl.fd < 0 && errno != ENOENT) throw ErrnoError(env, errno, "open " + path);
    if (sysctl.fd >= 0 && write(sysctl.fd, "1", 1) != 1) throw ErrnoError(env, errno, "write " + path);
  }
  // MTU and link state through an ioctl socket opened here, i.e. in the TUN's namespace.
  FdGuard sock{socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0) throw ErrnoError(env, errno, "socket");
  struct ifreq req = {};
  strncpy(req.ifr_name, actual.c_str(), IFNAMSIZ - 1);
  if (mtu != 0) {
    req.ifr_mtu = static_cast<int>(mtu);
    if (ioctl(sock.fd, SIOCSIFMTU, &req) < 0) throw ErrnoError(env, errno, "SIOCSIFMTU");
  }
  if (ioctl(sock.fd, SIOCGIFMTU, &req) < 0) throw ErrnoError(env, errno, "SIOCGIFMTU");
  int actualMtu = req.ifr_mtu;
  if (up) {
    if (ioctl(sock.fd, SIOCGIFFLAGS, &req) < 0) throw ErrnoError(env, errno, "SIOCGIFFLAGS");
    req.ifr_flags |= IFF_UP;
    if (ioctl(sock.fd, SIOCSIFFLAGS, &req) < 0) throw ErrnoError(env, errno, "SIOCSIFFLAGS");
  }

  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, tun.release()));
  result.Set("name", Napi::String::New(env, actual));
  result.Set("created", Napi::Boolean::New(env, !existed));
  result.Set("mtu", Napi::Number::New(env, actualMtu));
  return result;
}

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod<&Poller::SetEvents>("setEvents"), InstanceMethod<&Poller::Write>("write"),
                        InstanceMethod<&Poller::Close>("close")});
  }

  // new Poller(fd, readBuffer: ArrayBuffer, lens: Uint32Array(2*kBatch + 2), maxRead, onRead, onWritable)
  // onRead(n): n packets are in readBuffer at lens[2i] (offset), lens[2i+1] (length); a negative
  // n is a -errno from read or poll. onWritable(): the fd accepts writes again. The last two
  // entries of lens count packets the kernel rejected on write and hold the last such errno
  // (shared memory: no call needed to read them on the hot path).
  explicit Poller(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Poller>(info), ctx_(info.Env(), "mptun:tun") {
    Napi::Env env = info.Env();
    fd_ = info[0].As<Napi::Number>().Int32Value();
    Napi::ArrayBuffer buf = info[1].As<Napi::ArrayBuffer>();
    Napi::Uint32Array lens = info[2].As<Napi::Uint32Array>();
    if (lens.ElementLength() < 2 * kBatch + 2) throw Napi::RangeError::New(env, "lens too short");
    buf_ = static_cast<uint8_t*>(buf.Data());
    bufLen_ = buf.ByteLength();
    lens_ = lens.Data();
    maxRead_ = info[3].As<Napi::Number>().Uint32Value();
    bufRef_ = Napi::Persistent(buf.As<Napi::Object>());
    lensRef_ = Napi::Persistent(lens.As<Napi::Object>());
    onRead_ = Napi::Persistent(info[4].As<Napi::Function>());
    onWritable_ = Napi::Persistent(info[5].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    if (int rc = uv_poll_init(loop, &poll_, fd_)) throw ErrnoError(env, -rc, "uv_poll_init");
    poll_.data = this;
    Ref();  // alive until the handle is closed, whatever JS holds
  }

 private:
  // setEvents(readable, writable): what to wait for; both false stops polling.
  void SetEvents(const Napi::CallbackInfo& info) {
    if (closed_) return;
    int events = (info[0].ToBoolean() ? UV_READABLE : 0) | (info[1].ToBoolean() ? UV_WRITABLE : 0);
    int rc = events ? uv_poll_start(&poll_, events, OnPoll) : uv_poll_stop(&poll_);
    if (rc) throw ErrnoError(info.Env(), -rc, "uv_poll_start");
  }

  // write(hdrs: Uint8Array | null, hdrSize, packets: Uint8Array[], start, end) -> index reached.
  // Packet i goes out as hdrs[i*hdrSize .. +hdrSize] followed by packets[i]. Stops early only at
  // EAGAIN; a packet the kernel rejects (EINVAL...) is dropped and counted in lens[2*kBatch].
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw ErrnoError(env, EBADF, "write");
    uint8_t* hdrs = nullptr;
    size_t hdrsLen = 0;
    if (info[0].IsTypedArray()) {
      Napi::Uint8Array h = info[0].As<Napi::Uint8Array>();
      hdrs = h.Data();
      hdrsLen = h.ByteLength();
    }
    uint32_t hdrSize = info[1].As<Napi::Number>().Uint32Value();
    Napi::Array packets = info[2].As<Napi::Array>();
    uint32_t i = info[3].As<Napi::Number>().Uint32Value();
    uint32_t end = info[4].As<Napi::Number>().Uint32Value();
    if (hdrSize != 0 && (hdrs == nullptr || hdrsLen < size_t(end) * hdrSize)) {
      throw Napi::RangeError::New(env, "header buffer too short");
    }
    for (; i < end; i++) {
      // Plain N-API calls: the C++ wrappers fetch more than needed, and this is per packet.
      napi_value pkt;
      void* data = nullptr;
      size_t len = 0;
      napi_typedarray_type type;
      if (napi_get_element(env, packets, i, &pkt) != napi_ok ||
          napi_get_typedarray_info(env, pkt, &type, &len, &data, nullptr, nullptr) != napi_ok ||
          type != napi_uint8_array) {
        throw Napi::TypeError::New(env, "packets must be Uint8Arrays");
      }
      struct iovec iov[2] = {{hdrs + size_t(i) * hdrSize, hdrSize}, {data, len}};
      ssize_t r;
      do r = hdrSize ? writev(fd_, iov, 2) : write(fd_, data, len);
      while (r < 0 && errno == EINTR);
      if (r < 0 && errno == EAGAIN) break;
      if (r < 0) {
        lens_[2 * kBatch]++;
        lens_[2 * kBatch + 1] = uint32_t(errno);
      }
    }
    return Napi::Number::New(env, i);
  }

  // close(done?): stops polling, closes the fd once libuv let go of it, then calls done().
  void Close(const Napi::CallbackInfo& info) {
    if (closed_) return;
    closed_ = true;
    if (info[0].IsFunction()) onClosed_ = Napi::Persistent(info[0].As<Napi::Function>());
    uv_poll_stop(&poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), OnClose);
  }

  static void OnClose(uv_handle_t* handle) {
    Poller* self = static_cast<Poller*>(handle->data);
    close(self->fd_);
    self->fd_ = -1;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    if (!self->onClosed_.IsEmpty()) self->onClosed_.MakeCallback(env.Global(), {}, self->ctx_);
    self->Unref();
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    Poller* self = static_cast<Poller*>(handle->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      self->onRead_.MakeCallback(env.Global(), {Napi::Number::New(env, status)}, self->ctx_);
      return;
    }
    if (events & UV_READABLE) self->ReadBatch(env);
    if (!self->closed_ && (events & UV_WRITABLE)) self->onWritable_.MakeCallback(env.Global(), {}, self->ctx_);
  }

  // Reads until EAGAIN, kBatch packets, or too little room left for a largest packet; packets
  // are packed 8-byte aligned. libuv polls level-triggered, so a full batch just means another
  // wakeup on the next loop turn (other I/O gets its turn in between).
  void ReadBatch(Napi::Env env) {
    uint32_t n = 0;
    size_t off = 0;
    int err = 0;
    while (n < kBatch && off + maxRead_ <= bufLen_) {
      ssize_t r = read(fd_, buf_ + off, maxRead_);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        if (errno != EAGAIN) err = errno;
        break;
      }
      if (r == 0) break;
      lens_[2 * n] = uint32_t(off);
      lens_[2 * n + 1] = uint32_t(r);
      n++;
      off += (size_t(r) + 7) & ~size_t(7);
    }
    if (n > 0) onRead_.MakeCallback(env.Global(), {Napi::Number::New(env, n)}, ctx_);
    if (err && !closed_) onRead_.MakeCallback(env.Global(), {Napi::Number::New(env, -err)}, ctx_);
  }

  int fd_ = -1;
  uv_poll_t poll_ = {};
  bool closed_ = false;
  uint8_t* buf_ = nullptr;
  size_t bufLen_ = 0;
  uint32_t* lens_ = nullptr;
  uint32_t maxRead_ = 0;
  Napi::AsyncContext ctx_;
  Napi::ObjectReference bufRef_, lensRef_;
  Napi::FunctionReference onRead_, onWritable_, onClosed_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("Poller", Poller::Define(env));
  exports.Set("batch", Napi::Number::New(env, kBatch));
  return exports;
}

}  // namespace

NODE_API_MODULE(mptun_tun, Init)
