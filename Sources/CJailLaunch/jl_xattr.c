#include "jl_xattr.h"

#include <sys/xattr.h>

ssize_t jl_flistxattr(int fd, char *list, size_t size) { return flistxattr(fd, list, size); }
ssize_t jl_fgetxattr(int fd, const char *name, void *value, size_t size) { return fgetxattr(fd, name, value, size); }
int jl_fsetxattr(int fd, const char *name, const void *value, size_t size) { return fsetxattr(fd, name, value, size, 0); }
