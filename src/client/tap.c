/*
 * tap: TAP device creation and configuration. See include/wtrelay/tap.h.
 */
#include "wtrelay/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen)
    vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

static const char *perm_hint(int e)
{
  return e == EPERM || e == EACCES ? " (needs CAP_NET_ADMIN: run as root or grant it)" : "";
}

int tap_open(const char *name, const uint8_t mac[6], int *fd, char ifname[TAP_NAME_MAX], char *err,
             size_t errlen)
{
  struct ifreq ifr;
  if (strlen(name) >= IFNAMSIZ)
    return fail(err, errlen, -EINVAL, "TAP name '%s' is longer than %d characters", name,
                IFNAMSIZ - 1);
  int f = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (f < 0) {
    int e = errno;
    return fail(err, errlen, -e, "cannot open /dev/net/tun: %s%s", strerror(e), perm_hint(e));
  }
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", *name ? name : "wtr%d");
  if (ioctl(f, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(f);
    return fail(err, errlen, -e, "cannot create TAP device '%s': %s%s", ifr.ifr_name, strerror(e),
                perm_hint(e));
  }
  snprintf(ifname, TAP_NAME_MAX, "%s", ifr.ifr_name);
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
  if (ioctl(f, SIOCSIFHWADDR, &ifr) < 0) {
    int e = errno;
    close(f);
    return fail(err, errlen, -e, "cannot set the MAC of %s: %s", ifname, strerror(e));
  }
  *fd = f;
  return 0;
}

static int open_netns(const char *netns, char *err, size_t errlen)
{
  char path[256];
  if (strchr(netns, '/'))
    snprintf(path, sizeof(path), "%s", netns);
  else
    snprintf(path, sizeof(path), "/run/netns/%s", netns);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return fail(err, errlen, -e, "network namespace '%s' (%s): %s", netns, path, strerror(e));
  }
  return fd;
}

int tap_move_netns(const char *ifname, const char *netns, char *err, size_t errlen)
{
  struct {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
    char attrs[64];
  } req;
  unsigned idx = if_nametoindex(ifname);
  if (!idx)
    return fail(err, errlen, -ENODEV, "no interface %s", ifname);
  int nsfd = open_netns(netns, err, errlen);
  if (nsfd < 0)
    return nsfd;
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) {
    int e = errno;
    close(nsfd);
    return fail(err, errlen, -e, "netlink socket: %s", strerror(e));
  }
  memset(&req, 0, sizeof(req));
  req.nh.nlmsg_type = RTM_NEWLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = (int)idx;
  struct rtattr *rta = (struct rtattr *)(void *)req.attrs;
  rta->rta_type = IFLA_NET_NS_FD;
  rta->rta_len = RTA_LENGTH(sizeof(uint32_t));
  uint32_t v = (uint32_t)nsfd;
  memcpy(RTA_DATA(rta), &v, sizeof(v));
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi)) + RTA_ALIGN(rta->rta_len);
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  int rc = 0;
  if (sendto(s, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
    rc = -errno;
  } else {
    char buf[4096];
    ssize_t n = recv(s, buf, sizeof(buf), 0);
    struct nlmsghdr *nh = (struct nlmsghdr *)(void *)buf;
    if (n < 0)
      rc = -errno;
    else if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && nh->nlmsg_type == NLMSG_ERROR)
      rc = ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
  }
  close(s);
  close(nsfd);
  if (rc < 0)
    return fail(err, errlen, rc, "cannot move %s into namespace '%s': %s%s", ifname, netns,
                strerror(-rc), perm_hint(-rc));
  return 0;
}

/* Runs fn with an AF_INET socket created inside netns (or here). */
static int in_netns(const char *netns, int (*fn)(int sock, void *arg), void *arg, char *err,
                    size_t errlen)
{
  int self = -1, nsfd = -1, rc;
  if (netns && *netns) {
    self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0)
      return fail(err, errlen, -errno, "cannot open /proc/self/ns/net: %s", strerror(errno));
    nsfd = open_netns(netns, err, errlen);
    if (nsfd < 0) {
      close(self);
      return nsfd;
    }
    if (setns(nsfd, CLONE_NEWNET) < 0) {
      int e = errno;
      close(self);
      close(nsfd);
      return fail(err, errlen, -e, "cannot enter namespace '%s': %s%s", netns, strerror(e),
                  perm_hint(e));
    }
  }
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  rc = sock < 0 ? -errno : fn(sock, arg);
  if (sock >= 0)
    close(sock);
  if (self >= 0) {
    if (setns(self, CLONE_NEWNET) < 0 && rc == 0)
      rc = -errno;
    close(self);
    close(nsfd);
  }
  return rc;
}

struct cfg_arg {
  const char *ifname;
  const struct tap_addr *addr;
  bool lo;       /* bring lo up too (a namespace of its own) */
  char kept[64]; /* the default route left in place: "dev eth0 via 192.0.2.1" */
  const char *step;
};

static int set_up(int sock, const char *ifname)
{
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
    return -errno;
  if (ifr.ifr_flags & IFF_UP)
    return 0;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
    return -errno;
  return 0;
}

static int do_up(int sock, void *arg)
{
  struct cfg_arg *a = arg;
  a->step = "bring up";
  return set_up(sock, a->ifname);
}

static void sin_set(struct sockaddr *sa, uint32_t ip)
{
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(ip)};
  memcpy(sa, &sin, sizeof(sin));
}

/* The first IPv4 default route of the calling thread's namespace
 * (/proc/thread-self/net is the namespace the thread is in now): its
 * device and gateway (host order). 0 when found, -ENOENT when none. */
static int default_route(char dev[IFNAMSIZ], uint32_t *gw)
{
  FILE *f = fopen("/proc/thread-self/net/route", "re");
  if (!f)
    return -errno;
  char line[256], ifc[IFNAMSIZ];
  unsigned dst, via, flags, mask;
  int rc = -ENOENT;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "%15s %x %x %x %*d %*d %*d %x", ifc, &dst, &via, &flags, &mask) == 5 &&
        dst == 0 && mask == 0 && (flags & RTF_UP)) {
      snprintf(dev, IFNAMSIZ, "%s", ifc);
      *gw = ntohl(via); /* the file prints the network-order word as read */
      rc = 0;
      break;
    }
  fclose(f);
  return rc;
}

/* The default route via the gateway: added when there is none; one on our
 * device (an earlier address) or, when asked, anyone's is replaced; another
 * is left and described in a->kept (return 1). */
static int set_default_route(int sock, struct cfg_arg *a)
{
  const struct tap_addr *t = a->addr;
  char dev[IFNAMSIZ];
  uint32_t via = 0;
  struct rtentry rt;
  memset(&rt, 0, sizeof(rt));
  sin_set(&rt.rt_dst, 0);
  sin_set(&rt.rt_genmask, 0);
  a->step = "read the routes";
  for (int i = 0; i < 8; i++) { /* one at a time: several metrics may each hold one */
    int rc = default_route(dev, &via);
    if (rc == -ENOENT)
      break;
    if (rc < 0)
      return rc;
    if (strcmp(dev, a->ifname) == 0 && via == t->gw)
      return 0;
    if (strcmp(dev, a->ifname) != 0 && !t->replace_default_route) {
      struct in_addr in = {.s_addr = htonl(via)};
      snprintf(a->kept, sizeof(a->kept), "dev %s via %s", dev, inet_ntoa(in));
      return 1;
    }
    a->step = "delete the default route";
    rt.rt_dev = dev;
    if (ioctl(sock, SIOCDELRT, &rt) < 0 && errno != ESRCH)
      return -errno;
  }
  sin_set(&rt.rt_gateway, t->gw);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  rt.rt_dev = (char *)a->ifname;
  a->step = "add default route";
  if (ioctl(sock, SIOCADDRT, &rt) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

static int do_configure(int sock, void *arg)
{
  struct cfg_arg *a = arg;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", a->ifname);
  sin_set(&ifr.ifr_addr, a->addr->ip);
  a->step = "set address";
  if (ioctl(sock, SIOCSIFADDR, &ifr) < 0)
    return -errno;
  sin_set(&ifr.ifr_netmask, a->addr->netmask);
  a->step = "set netmask";
  if (ioctl(sock, SIOCSIFNETMASK, &ifr) < 0)
    return -errno;
  int rc = do_up(sock, arg);
  if (rc == 0 && a->lo) {
    a->step = "bring up lo";
    rc = set_up(sock, "lo");
  }
  if (rc < 0 || !a->addr->gw)
    return rc;
  return set_default_route(sock, a);
}

/* /etc/netns/NAME/resolv.conf, which `ip netns exec NAME` mounts over
 * /etc/resolv.conf: written to a temporary file and renamed into place. */
static int write_resolv(const char *netns, uint32_t dns, char *err, size_t errlen)
{
  char dir[200], path[232], tmp[256];
  if (snprintf(dir, sizeof(dir), "/etc/netns/%s", netns) >= (int)sizeof(dir))
    return fail(err, errlen, -ENAMETOOLONG, "namespace name '%s' is too long", netns);
  snprintf(path, sizeof(path), "%s/resolv.conf", dir);
  snprintf(tmp, sizeof(tmp), "%s.wtrelay-tap", path);
  if ((mkdir("/etc/netns", 0755) < 0 && errno != EEXIST) ||
      (mkdir(dir, 0755) < 0 && errno != EEXIST))
    return fail(err, errlen, -errno, "cannot create %s: %s", dir, strerror(errno));
  FILE *f = fopen(tmp, "we");
  if (!f)
    return fail(err, errlen, -errno, "cannot write %s: %s", tmp, strerror(errno));
  fprintf(f,
          "# written by wtrelay-tap --configure: the DNS server of the relay's room\n"
          "nameserver %u.%u.%u.%u\n",
          dns >> 24, (dns >> 16) & 255, (dns >> 8) & 255, dns & 255);
  int bad = ferror(f);
  if (fclose(f) != 0 || bad || rename(tmp, path) < 0) {
    int e = errno ? errno : EIO;
    unlink(tmp);
    return fail(err, errlen, -e, "cannot write %s: %s", path, strerror(e));
  }
  return 0;
}

int tap_up(const char *netns, const char *ifname, char *err, size_t errlen)
{
  struct cfg_arg a = {.ifname = ifname, .step = ""};
  if (err && errlen)
    err[0] = '\0';
  int rc = in_netns(netns, do_up, &a, err, errlen);
  if (rc < 0 && err && !*err)
    fail(err, errlen, rc, "%s %s: %s%s", a.step, ifname, strerror(-rc), perm_hint(-rc));
  return rc;
}

int tap_configure(const char *netns, const char *ifname, const struct tap_addr *addr, char *err,
                  size_t errlen)
{
  bool own_ns = netns && *netns;
  struct cfg_arg a = {.ifname = ifname, .addr = addr, .lo = own_ns, .step = ""};
  if (err && errlen)
    err[0] = '\0';
  int rc = in_netns(netns, do_configure, &a, err, errlen);
  if (rc < 0 && err && !*err)
    fail(err, errlen, rc, "%s of %s: %s%s", a.step, ifname, strerror(-rc), perm_hint(-rc));
  if (rc < 0)
    return rc;
  if (own_ns && !strchr(netns, '/') && addr->dns) {
    int wrc = write_resolv(netns, addr->dns, err, errlen);
    if (wrc < 0)
      return wrc;
  }
  if (rc == TAP_ROUTE_KEPT)
    fail(err, errlen, rc, "%s", a.kept);
  return rc;
}
