#!/usr/bin/python3
"""A passthrough FUSE filesystem over ROOT that hangs operations while CONTROL_FILE exists, as a
hard NFS mount does when its server is gone: the caller blocks in the kernel until the file is
removed. CONTROL_FILE holds a text: only paths containing it hang (empty: every path).

Usage: stallfs.py ROOT MOUNTPOINT CONTROL_FILE   (tests/support/stallfs.rs runs it)"""
import errno, os, sys, time
from fusepy import FUSE, FuseOSError, Operations

class Stall(Operations):
    def __init__(self, root, control):
        self.root, self.control = root, control
    def _hung(self, path):
        try:
            with open(self.control) as f:
                return f.read().strip() in path
        except FileNotFoundError:
            return False

    def _p(self, path):
        while self._hung(path):
            time.sleep(0.05)
        return os.path.join(self.root, path.lstrip('/'))
    def access(self, path, mode):
        if not os.access(self._p(path), mode):
            raise FuseOSError(errno.EACCES)
    def chmod(self, path, mode): return os.chmod(self._p(path), mode)
    def chown(self, path, uid, gid): return os.chown(self._p(path), uid, gid)
    def getattr(self, path, fh=None):
        st = os.lstat(self._p(path))
        return {k: getattr(st, k) for k in ('st_atime', 'st_ctime', 'st_gid', 'st_mode', 'st_mtime', 'st_nlink', 'st_size', 'st_uid')}
    def readdir(self, path, fh): return ['.', '..'] + os.listdir(self._p(path))
    def mkdir(self, path, mode): return os.mkdir(self._p(path), mode)
    def rmdir(self, path): return os.rmdir(self._p(path))
    def unlink(self, path): return os.unlink(self._p(path))
    def rename(self, old, new): return os.rename(self._p(old), self._p(new))
    def statfs(self, path):
        s = os.statvfs(self._p(path))
        return {k: getattr(s, k) for k in ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')}
    def utimens(self, path, times=None): return os.utime(self._p(path), times)
    def open(self, path, flags): return os.open(self._p(path), flags)
    def create(self, path, mode, fi=None): return os.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    def read(self, path, length, offset, fh):
        self._p(path); os.lseek(fh, offset, os.SEEK_SET); return os.read(fh, length)
    def write(self, path, buf, offset, fh):
        self._p(path); os.lseek(fh, offset, os.SEEK_SET); return os.write(fh, buf)
    def truncate(self, path, length, fh=None):
        with open(self._p(path), 'r+') as f: f.truncate(length)
    def flush(self, path, fh): self._p(path); return os.fsync(fh)
    def release(self, path, fh): return os.close(fh)
    def fsync(self, path, datasync, fh): self._p(path); return os.fsync(fh)

if __name__ == '__main__':
    root, mountpoint, control = sys.argv[1:4]
    FUSE(Stall(os.path.realpath(root), control), mountpoint, foreground=True, allow_other=True)
