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
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
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
  uint32_t ip, mask, gw;
  const char *step;
};

static int do_up(int sock, void *arg)
{
  struct cfg_arg *a = arg;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", a->ifname);
  a->step = "read flags";
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
    return -errno;
  ifr.ifr_flags |= IFF_UP;
  a->step = "set up";
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
    return -errno;
  return 0;
}

static void sin_set(struct sockaddr *sa, uint32_t ip)
{
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(ip)};
  memcpy(sa, &sin, sizeof(sin));
}

static int do_configure(int sock, void *arg)
{
  struct cfg_arg *a = arg;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", a->ifname);
  sin_set(&ifr.ifr_addr, a->ip);
  a->step = "set address";
  if (ioctl(sock, SIOCSIFADDR, &ifr) < 0)
    return -errno;
  sin_set(&ifr.ifr_netmask, a->mask);
  a->step = "set netmask";
  if (ioctl(sock, SIOCSIFNETMASK, &ifr) < 0)
    return -errno;
  int rc = do_up(sock, arg);
  if (rc < 0 || !a->gw)
    return rc;
  struct rtentry rt;
  memset(&rt, 0, sizeof(rt));
  sin_set(&rt.rt_dst, 0);
  sin_set(&rt.rt_genmask, 0);
  sin_set(&rt.rt_gateway, a->gw);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  rt.rt_dev = (char *)a->ifname;
  ioctl(sock, SIOCDELRT, &rt); /* replace: no route yet is fine */
  a->step = "add default route";
  if (ioctl(sock, SIOCADDRT, &rt) < 0 && errno != EEXIST)
    return -errno;
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

int tap_configure(const char *netns, const char *ifname, uint32_t ip, uint32_t netmask, uint32_t gw,
                  char *err, size_t errlen)
{
  struct cfg_arg a = {.ifname = ifname, .ip = ip, .mask = netmask, .gw = gw, .step = ""};
  if (err && errlen)
    err[0] = '\0';
  int rc = in_netns(netns, do_configure, &a, err, errlen);
  if (rc < 0 && err && !*err)
    fail(err, errlen, rc, "%s of %s: %s%s", a.step, ifname, strerror(-rc), perm_hint(-rc));
  return rc;
}
