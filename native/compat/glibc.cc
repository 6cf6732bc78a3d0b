// Linked only into the portable Linux builds (CMake IGNIS_GLIBC_SYSROOT): the addon links against
// an old glibc (2.17) and a static libstdc++, so it loads on any glibc from 2.28 (RHEL 8, Debian
// 10, Ubuntu 18.04 on). The static libstdc++ was built against the build machine's newer glibc,
// and three of its references have no definition in the old one; each gets a hidden definition
// here, so it binds inside ignis.node and never asks the system for it.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define IGNIS_HIDDEN __attribute__((visibility("hidden")))

extern "C" {

// glibc 2.32: libstdc++ skips its atomic reference counts when this is nonzero. 0 ("maybe
// several threads") always takes the atomic path, which is correct on every glibc.
IGNIS_HIDDEN char __libc_single_threaded = 0;

// glibc 2.25: std::random_device's "getentropy" source (libstdc++ random.o, linked in by the
// string and exception code; ignis itself seeds its generators explicitly). The kernel's
// getrandom() (Linux 3.17), else /dev/urandom.
IGNIS_HIDDEN int getentropy(void* buffer, size_t length) {
  if (length > 256) {
    errno = EIO;
    return -1;
  }
  auto* p = static_cast<unsigned char*>(buffer);
  size_t done = 0;
#ifdef SYS_getrandom
  while (done < length) {
    long n = syscall(SYS_getrandom, p + done, length - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (done == length) return 0;
#endif
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  while (done < length) {
    ssize_t n = read(fd, p + done, length - done);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      close(fd);
      errno = EIO;
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return 0;
}

// glibc 2.36: std::random_device's default source. It has no way to fail (glibc's aborts); ignis
// never calls it, and a failed read here gives 0 rather than ending the process.
IGNIS_HIDDEN uint32_t arc4random(void) {
  uint32_t v = 0;
  if (getentropy(&v, sizeof v) != 0) v = 0;
  return v;
}

}  // extern "C"
