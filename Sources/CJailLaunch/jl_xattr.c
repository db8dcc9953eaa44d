#include "jl_xattr.h"

#include <sys/xattr.h>

ssize_t jl_flistxattr(int fd, char *list, size_t size) { return flistxattr(fd, list, size); }
ssize_t jl_fgetxattr(int fd, const char *name, void *value, size_t size) { return fgetxattr(fd, name, value, size); }
int jl_fsetxattr(int fd, const char *name, const void *value, size_t size) { return fsetxattr(fd, name, value, size, 0); }

#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

int jl_set_topdir(int dir_fd) {
    int flags = 0;
    if (ioctl(dir_fd, FS_IOC_GETFLAGS, &flags) < 0) return -errno;
    if (flags & FS_TOPDIR_FL) return 0;
    flags |= FS_TOPDIR_FL;
    return ioctl(dir_fd, FS_IOC_SETFLAGS, &flags) < 0 ? -errno : 0;
}
