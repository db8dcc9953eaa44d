// Extended attributes for Swift (Glibc's module does not export <sys/xattr.h>): the
// backup snapshots keep the xattrs in which rsync's --fake-super stores owners and modes.
#ifndef JL_XATTR_H
#define JL_XATTR_H
#include <stddef.h>
#include <sys/types.h>

ssize_t jl_flistxattr(int fd, char *list, size_t size);
ssize_t jl_fgetxattr(int fd, const char *name, void *value, size_t size);
int jl_fsetxattr(int fd, const char *name, const void *value, size_t size);

// Marks a directory as the top of independent hierarchies (FS_TOPDIR_FL, chattr +T):
// ext4's allocator then spreads the directories made in it over block groups instead of
// packing them into the parent's. Returns 0 or -errno (ENOTTY, EOPNOTSUPP: a file
// system without inode flags).
int jl_set_topdir(int dir_fd);
#endif
