// C reference for the TUN benchmarks (bench/tun.ts): the same loops as mptun's binding, in
// plain C, so each mptun figure stands next to what C gets on the same machine in the same run.
//
//   tun-ref read NAME vnet|plain offload|nooffload
//       attach to NAME; print "ready"; for each stdin line "go N": read N packets (poll, then
//       read until EAGAIN), print "<packets> <bytes> <nanoseconds>"; exit at EOF.
//   tun-ref write NAME vnet|plain SIZE COUNT
//       attach to NAME; write COUNT copies of one SIZE-byte IPv4 packet (with vnet: a TCP
//       super-packet with a TSO header, else UDP), print "<packets> <bytes> <nanoseconds>".
//   tun-ref forward NAME_A NAME_B NETNS_B
//       attach to NAME_A here and NAME_B inside the namespace file NETNS_B (vnet headers and
//       offload on both); copy packets both ways, up to 64 per wakeup, until SIGTERM; print
//       "<packets> <bytes>" on exit.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_READ (65535 + sizeof(struct virtio_net_hdr))

static void die(const char *what) {
  perror(what);
  exit(1);
}

static int tun_attach(const char *name, int vnet, int offload) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
  if (offload && ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0) die("TUNSETOFFLOAD");
  return fd;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmd_read(const char *name, int vnet, int offload) {
  int fd = tun_attach(name, vnet, offload);
  static uint8_t buf[MAX_READ];
  char line[64];
  printf("ready\n");
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {
    long want = 0;
    if (sscanf(line, "go %ld", &want) != 1) continue;
    long got = 0, bytes = 0;
    uint64_t t0 = now_ns(), t1 = t0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (got < want) {
      int rc = poll(&p, 1, 1000);  // bounded: a lost packet ends the round instead of hanging
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) break;
      for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0) break;
        got++;
        bytes += r - (vnet ? (ssize_t)sizeof(struct virtio_net_hdr) : 0);
      }
      t1 = now_ns();
    }
    printf("%ld %ld %llu\n", got, bytes, (unsigned long long)(t1 - t0));
    fflush(stdout);
  }
  return 0;
}

static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (uint32_t)p[n - 1] << 8;
  return sum;
}

// One IPv4 packet 10.201.0.2 -> 10.203.0.2 of `size` bytes: TCP (for TSO) or UDP.
static void build_packet(uint8_t *pkt, size_t size, int tcp) {
  memset(pkt, 0, size);
  for (size_t i = 48; i < size; i++) pkt[i] = (uint8_t)i;
  pkt[0] = 0x45;
  pkt[2] = (uint8_t)(size >> 8), pkt[3] = (uint8_t)size;
  pkt[6] = 0x40;  // DF
  pkt[8] = 64;
  pkt[9] = tcp ? 6 : 17;
  const uint8_t addrs[8] = {10, 201, 0, 2, 10, 203, 0, 2};
  memcpy(pkt + 12, addrs, 8);
  uint16_t ipsum = (uint16_t)~csum_fold(sum16(pkt, 20, 0));
  pkt[10] = (uint8_t)(ipsum >> 8), pkt[11] = (uint8_t)ipsum;
  uint8_t *l4 = pkt + 20;
  size_t l4len = size - 20;
  l4[0] = 0x9c, l4[1] = 0x40, l4[2] = 0x13, l4[3] = 0x89;  // ports 40000 -> 5001
  uint32_t pseudo = sum16(addrs, 8, 0) + (tcp ? 6 : 17) + (uint32_t)l4len;
  if (tcp) {
    l4[12] = 5 << 4;
    l4[13] = 0x10;  // ACK
    l4[14] = 0xff, l4[15] = 0xff;
    // With NEEDS_CSUM the field holds the pseudo-header sum; the kernel finishes it.
    uint16_t partial = csum_fold(pseudo);
    l4[16] = (uint8_t)(partial >> 8), l4[17] = (uint8_t)partial;
  } else {
    l4[4] = (uint8_t)(l4len >> 8), l4[5] = (uint8_t)l4len;
    uint16_t s = (uint16_t)~csum_fold(sum16(l4, l4len, pseudo));
    l4[6] = (uint8_t)(s >> 8), l4[7] = (uint8_t)s;
  }
}

static int cmd_write(const char *name, int vnet, size_t size, long count) {
  int fd = tun_attach(name, vnet, 0);
  uint8_t *frame = calloc(1, sizeof(struct virtio_net_hdr) + size);
  size_t hdr = vnet ? sizeof(struct virtio_net_hdr) : 0;
  int tso = vnet && size > 1500;
  build_packet(frame + hdr, size, tso);
  if (tso) {
    struct virtio_net_hdr *h = (struct virtio_net_hdr *)frame;
    h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h->hdr_len = 40;
    h->gso_size = 1448;
    h->csum_start = 20;
    h->csum_offset = 16;
  }
  long sent = 0;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  uint64_t t0 = now_ns();
  while (sent < count) {
    ssize_t r = write(fd, frame, hdr + size);
    if (r < 0 && errno == EAGAIN) {
      poll(&p, 1, 1000);
      continue;
    }
    if (r < 0) die("write");
    sent++;
  }
  uint64_t t1 = now_ns();
  printf("%ld %ld %llu\n", sent, sent * (long)size, (unsigned long long)(t1 - t0));
  return 0;
}

static volatile sig_atomic_t stop;
static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

// Reads up to BATCH packets from `from` and writes each to `to`; returns packets moved.
static long forward_batch(int from, int to, uint8_t *buf, long *bytes) {
  long n = 0;
  while (n < BATCH) {
    ssize_t r = read(from, buf, MAX_READ);
    if (r <= 0) break;
    while (write(to, buf, (size_t)r) < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = to, .events = POLLOUT};
      poll(&p, 1, 1000);
    }
    n++;
    *bytes += r;
  }
  return n;
}

static int cmd_forward(const char *a_name, const char *b_name, const char *b_netns) {
  int a = tun_attach(a_name, 1, 1);
  int here = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int there = open(b_netns, O_RDONLY | O_CLOEXEC);
  if (here < 0 || there < 0) die("open netns");
  if (setns(there, CLONE_NEWNET) < 0) die("setns");
  int b = tun_attach(b_name, 1, 1);
  if (setns(here, CLONE_NEWNET) < 0) die("setns back");
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  printf("ready\n");
  fflush(stdout);
  static uint8_t buf[MAX_READ];
  long packets = 0, bytes = 0;
  struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
  while (!stop) {
    if (poll(p, 2, 200) <= 0) continue;
    if (p[0].revents & POLLIN) packets += forward_batch(a, b, buf, &bytes);
    if (p[1].revents & POLLIN) packets += forward_batch(b, a, buf, &bytes);
  }
  printf("%ld %ld\n", packets, bytes);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && !strcmp(argv[1], "read"))
    return cmd_read(argv[2], !strcmp(argv[3], "vnet"), !strcmp(argv[4], "offload"));
  if (argc == 6 && !strcmp(argv[1], "write"))
    return cmd_write(argv[2], !strcmp(argv[3], "vnet"), (size_t)atol(argv[4]), atol(argv[5]));
  if (argc == 5 && !strcmp(argv[1], "forward")) return cmd_forward(argv[2], argv[3], argv[4]);
  fprintf(stderr, "usage: see the comment at the top of bench/c/tun-ref.c\n");
  return 2;
}
