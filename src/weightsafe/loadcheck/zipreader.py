"""Read a torch zip checkpoint the way torch's own reader (miniz, in ``PyTorchStreamReader``) does,
and refuse every archive two readers could read differently.

Python's ``zipfile`` is forgiving where miniz is not, and the reverse: it skips bytes prepended
to an archive, keeps the *last* of two members with one name (miniz finds one by a binary search,
comparing names case-insensitively), trusts a zip64 locator without checking it against the end
record, and inflates without a limit. A scan that reads one pickle while ``torch.load`` runs
another proves nothing, so this reader accepts only the unambiguous layout ``torch.save`` writes:
the first local header at byte 0, members that tile the file with nothing between or around them,
a central directory that ends exactly at the (zip64) end records, one member per name, stored or
deflated, never encrypted, and every CRC right. Anything else is refused, named.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

LOCAL = b"PK\x03\x04"
CENTRAL = b"PK\x01\x02"
END = b"PK\x05\x06"
END64 = b"PK\x06\x06"
LOCATOR64 = b"PK\x06\x07"
DESCRIPTOR = b"PK\x07\x08"
STORED, DEFLATED = 0, 8
MAX_MEMBERS = 1_000_000
MAX_NAME = 4096
CHUNK = 1 << 20


class ZipRefused(Exception):
    """The archive is not one that torch and this reader are sure to read alike; says why."""


@dataclass(frozen=True)
class Member:
    """One member as the central directory and its local header agree it is."""

    name: str
    header_offset: int
    data_offset: int
    compressed_size: int
    size: int
    crc: int
    method: int


@dataclass(frozen=True)
class ZipArchive:
    path: str
    members: tuple[Member, ...]

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def read(self, member: Member) -> bytes:
        """The member's bytes, inflated no further than its declared size and CRC-checked."""
        return b"".join(_chunks(self.path, member))

    def check_crc(self, member: Member) -> None:
        """Stream the member once: a bad CRC or a size that disagrees is refused."""
        for _ in _chunks(self.path, member):
            pass


def _chunks(path: str, m: Member):
    crc, produced = 0, 0
    inflater = zlib.decompressobj(-15) if m.method == DEFLATED else None
    with open(path, "rb") as fh:
        fh.seek(m.data_offset)
        left = m.compressed_size
        while left or inflater is not None and not inflater.eof:
            raw = fh.read(min(CHUNK, left))
            left -= len(raw)
            if not raw and left:
                raise ZipRefused(f"member {m.name!r} is truncated")
            if inflater is None:
                out = raw
            else:
                try:  # never inflate more than the declared size (+1 byte to notice a bomb)
                    out = inflater.decompress(inflater.unconsumed_tail + raw, m.size - produced + 1)
                except zlib.error as e:
                    raise ZipRefused(f"member {m.name!r} has corrupt deflate data ({e})") from None
                if not raw and not out and not inflater.eof:
                    raise ZipRefused(f"member {m.name!r}: deflate stream ends early")
            produced += len(out)
            if produced > m.size:
                raise ZipRefused(f"member {m.name!r} inflates past its declared {m.size} bytes "
                                 f"(a zip bomb?): limit hit")
            crc = zlib.crc32(out, crc)
            yield out
    if produced != m.size:
        raise ZipRefused(f"member {m.name!r} holds {produced} bytes, its header says {m.size}")
    if crc != m.crc:
        raise ZipRefused(f"member {m.name!r} fails its CRC check (stored {m.crc:08x}, actual {crc:08x})")


def is_zip(head: bytes) -> bool:
    """torch.load's own test (``_is_zipfile``): a local header at byte 0, else a legacy pickle."""
    return head[:4] == LOCAL


def open_archive(path: str | os.PathLike) -> ZipArchive:
    """Parse and cross-check the whole layout; raises ZipRefused naming the first ambiguity."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        if not is_zip(fh.read(4)):
            raise ZipRefused("does not start with a zip local header (torch would read it as a legacy pickle)")
        if size < 22:
            raise ZipRefused("too short to hold a zip end record")
        fh.seek(size - 22)
        end = fh.read(22)
        if end[:4] != END:
            raise ZipRefused("no zip end record in the last 22 bytes (a comment or trailing data: "
                             "torch.save writes neither)")
        disk, cd_disk, n_disk, n, cd_size, cd_offset, comment = struct.unpack("<HHHHIIH", end[4:])
        if disk or cd_disk or n_disk != n:
            raise ZipRefused("a multi-disk archive")
        cd_end = size - 22
        if size >= 42:
            fh.seek(size - 42)
            loc = fh.read(20)
        else:
            loc = b""
        if loc[:4] == LOCATOR64:
            n, cd_size, cd_offset, cd_end = _zip64(fh, loc, size - 42, (n, cd_size, cd_offset))
        elif 0xFFFF in (n,) or 0xFFFFFFFF in (cd_size, cd_offset):
            raise ZipRefused("the end record defers to a zip64 record that is not there")
        if cd_offset + cd_size != cd_end:
            raise ZipRefused(f"the central directory ({cd_offset}+{cd_size}) does not end where the end "
                             f"records begin ({cd_end}): bytes hidden between them")
        if n > MAX_MEMBERS or cd_size > 64 * n + MAX_NAME * n + 65536 * 3 * n:
            raise ZipRefused(f"{n} members in a {cd_size}-byte central directory: limit hit")
        fh.seek(cd_offset)
        cd = fh.read(cd_size)
        placed = _central(fh, cd, n, size)
    return ZipArchive(path, _tiles(placed, cd_offset))


def _zip64(fh, loc: bytes, loc_pos: int, small: tuple[int, int, int]) -> tuple[int, int, int, int]:
    _, disk, rec_offset, disks = struct.unpack("<IIQI", loc)
    if disk or disks != 1:
        raise ZipRefused("a multi-disk zip64 archive")
    if rec_offset != loc_pos - 56:
        raise ZipRefused(f"the zip64 locator points at byte {rec_offset}, not at the zip64 end record "
                         f"just before it (byte {loc_pos - 56})")
    fh.seek(rec_offset)
    rec = fh.read(56)
    if rec[:4] != END64:
        raise ZipRefused("the zip64 locator points at no zip64 end record")
    rec_size, _, _, disk, cd_disk, n_disk, n, cd_size, cd_offset = struct.unpack("<QHHIIQQQQ", rec[4:])
    if rec_size != 44 or disk or cd_disk or n_disk != n:
        raise ZipRefused("a zip64 end record with extensible data or several disks")
    for name, short, full, sat in (("member count", small[0], n, 0xFFFF),
                                   ("central directory size", small[1], cd_size, 0xFFFFFFFF),
                                   ("central directory offset", small[2], cd_offset, 0xFFFFFFFF)):
        if short != sat and short != full:
            raise ZipRefused(f"the end record and the zip64 end record disagree on the {name} "
                             f"({short} vs {full})")
    return n, cd_size, cd_offset, rec_offset


def _central(fh, cd: bytes, n: int, file_size: int) -> list[tuple[Member, int]]:
    """Each member, checked against its local header, with the byte where its record ends."""
    members, seen, pos = [], set(), 0
    for i in range(n):
        if cd[pos:pos + 4] != CENTRAL or len(cd) < pos + 46:
            raise ZipRefused(f"central directory entry {i} is malformed")
        (_, _, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, disk, _, _,
         offset) = struct.unpack("<IHHHHHHIIIHHHHHII", cd[pos:pos + 46])
        raw_name = cd[pos + 46:pos + 46 + nlen]
        extra = cd[pos + 46 + nlen:pos + 46 + nlen + elen]
        pos += 46 + nlen + elen + clen
        if pos > len(cd):
            raise ZipRefused(f"central directory entry {i} runs past the directory")
        try:
            name = raw_name.decode("ascii")
        except UnicodeDecodeError:
            raise ZipRefused(f"member name {raw_name!r:.80} is not ASCII (readers decode it differently)") from None
        if flags & 0x41 or flags & 0x2000:
            raise ZipRefused(f"member {name!r} is encrypted")
        if method not in (STORED, DEFLATED):
            raise ZipRefused(f"member {name!r} uses compression method {method} (only stored and deflate "
                             f"are read alike)")
        if clen:
            raise ZipRefused(f"member {name!r} has a comment (torch.save writes none)")
        usize, csize, offset, disk = _zip64_extra(extra, name, usize, csize, offset, disk)
        if disk:
            raise ZipRefused(f"member {name!r} is on another disk")
        if name.lower() in seen:  # miniz looks names up case-insensitively
            raise ZipRefused(f"two members are named {name!r} (readers disagree on which one is read)")
        seen.add(name.lower())
        if method == STORED and csize != usize:
            raise ZipRefused(f"stored member {name!r} declares {csize} bytes stored but {usize} bytes of data")
        members.append(_local(fh, name, raw_name, flags, method, crc, csize, usize, offset, file_size))
    if pos != len(cd):
        raise ZipRefused(f"{len(cd) - pos} unexplained bytes at the end of the central directory")
    return members


def _zip64_extra(extra: bytes, name: str, usize: int, csize: int, offset: int, disk: int):
    p = 0
    while p + 4 <= len(extra):
        tag, ln = struct.unpack("<HH", extra[p:p + 4])
        body = extra[p + 4:p + 4 + ln]
        if tag == 1:
            values = []
            for want, v, width in ((usize == 0xFFFFFFFF, usize, 8), (csize == 0xFFFFFFFF, csize, 8),
                                   (offset == 0xFFFFFFFF, offset, 8), (disk == 0xFFFF, disk, 4)):
                if want:
                    if len(body) < width:
                        raise ZipRefused(f"member {name!r}: a zip64 extra field too short for its sizes")
                    v = int.from_bytes(body[:width], "little")
                    body = body[width:]
                values.append(v)
            return tuple(values)
        p += 4 + ln
    if 0xFFFFFFFF in (usize, csize, offset):
        raise ZipRefused(f"member {name!r} defers to a zip64 extra field that is not there")
    return usize, csize, offset, disk


def _local(fh, name, raw_name, flags, method, crc, csize, usize, offset, file_size) -> tuple[Member, int]:
    fh.seek(offset)
    head = fh.read(30)
    if len(head) < 30 or head[:4] != LOCAL:
        raise ZipRefused(f"member {name!r}: no local header at byte {offset}")
    _, _, lflags, lmethod, _, _, lcrc, lcsize, lusize, nlen, elen = struct.unpack("<IHHHHHIIIHH", head)
    if fh.read(nlen) != raw_name:
        raise ZipRefused(f"member {name!r}: its local header names another file")
    if lmethod != method or (lflags ^ flags) & 0x0809:
        raise ZipRefused(f"member {name!r}: local header and central directory disagree on method or flags")
    if not flags & 0x08:
        if lcrc != crc or (lcsize, lusize) not in ((csize, usize), (0xFFFFFFFF, 0xFFFFFFFF)):
            raise ZipRefused(f"member {name!r}: local header and central directory disagree on its size or CRC")
    data = offset + 30 + nlen + elen
    end = data + csize
    if end > file_size:
        raise ZipRefused(f"member {name!r} runs past the end of the file")
    if flags & 0x08:
        fh.seek(end)
        desc = fh.read(24)
        skip = 4 if desc[:4] == DESCRIPTOR else 0
        body = desc[skip:]
        if body[:4] != struct.pack("<I", crc):
            raise ZipRefused(f"member {name!r}: its data descriptor disagrees with the central directory")
        if body[4:12] == struct.pack("<II", csize & 0xFFFFFFFF, usize & 0xFFFFFFFF) and csize < 2**32 > usize:
            end += skip + 12
        elif body[4:20] == struct.pack("<QQ", csize, usize):
            end += skip + 20
        else:
            raise ZipRefused(f"member {name!r}: its data descriptor disagrees with the central directory")
    return Member(name, offset, data, csize, usize, crc, method), end


def _tiles(placed: list[tuple[Member, int]], cd_offset: int) -> tuple[Member, ...]:
    """Members must follow each other from byte 0 to the central directory: nothing before, between
    (a second archive, a hidden pickle) or overlapping."""
    position = 0
    for m, end in sorted(placed, key=lambda me: me[0].header_offset):
        if m.header_offset != position:
            what = "overlaps the previous member" if m.header_offset < position else \
                f"{m.header_offset - position} bytes no member accounts for precede it"
            raise ZipRefused(f"member {m.name!r} at byte {m.header_offset}: {what}")
        position = end
    if position != cd_offset:
        raise ZipRefused(f"{cd_offset - position} bytes no member accounts for before the central directory")
    return tuple(m for m, _ in placed)
