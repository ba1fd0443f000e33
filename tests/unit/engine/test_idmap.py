import random
import time

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.idmap import (
    Idmap,
    IdRange,
    allocate,
    read_subordinate_ranges,
)

BIG = [IdRange(1000000, 1000000000)]
SIZE = 65536


def _overlap(a: IdRange, b: IdRange) -> bool:
    return a.start < b.end and b.start < a.end


# -- read_subordinate_ranges ----------------------------------------------

def test_reads_every_range_of_the_user_in_file_order(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("# managed by tools/setup.sh\n"
                    "\n"
                    "alice:100000:65536\n"
                    "root:1000000:1000000000\n"
                    "  root:5000:10  \n"
                    "rootless:1:2\n")
    assert read_subordinate_ranges(path, "root") == [
        IdRange(1000000, 1000000000), IdRange(5000, 10)]
    assert read_subordinate_ranges(path, "alice") == [
        IdRange(100000, 65536)]


def test_numeric_uid_of_the_user_matches_too(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("0:2000000:65536\nroot:3000000:65536\n")
    assert read_subordinate_ranges(path, "root") == [
        IdRange(2000000, 65536), IdRange(3000000, 65536)]


def test_malformed_lines_are_skipped(tmp_path):
    path = tmp_path / "subgid"
    path.write_text("root:1000000\n"          # too few fields
                    "root:a:65536\n"          # not a number
                    "root:1:2:3\n"            # too many fields
                    "root:-5:10\n"            # negative start
                    "root:700000:0\n"         # empty
                    "root:800000:65536\n")
    assert read_subordinate_ranges(path, "root") == [
        IdRange(800000, 65536)]


def test_missing_user_and_missing_file_give_no_ranges(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536\n")
    assert read_subordinate_ranges(path, "no-such-user-x") == []
    assert read_subordinate_ranges(tmp_path / "absent", "root") == []


# -- Idmap ----------------------------------------------------------------

def test_lxc_lines_and_host_ids():
    m = Idmap(1065536, 2065536, SIZE)
    assert m.lxc_lines() == [("lxc.idmap", "u 0 1065536 65536"),
                             ("lxc.idmap", "g 0 2065536 65536")]
    assert m.host_uid(0) == 1065536
    assert m.host_uid(1000) == 1066536
    assert m.host_gid(65535) == 2065536 + 65535
    with pytest.raises(errors.InvalidInput):
        m.host_uid(SIZE)
    with pytest.raises(errors.InvalidInput):
        m.host_uid(-1)


def test_invalid_idmap_is_refused():
    with pytest.raises(errors.InvalidInput):
        Idmap(1000000, 1000000, 0)
    with pytest.raises(errors.InvalidInput):
        Idmap(-1, 1000000, SIZE)


# -- allocate -------------------------------------------------------------

def test_first_map_starts_at_the_range_start():
    assert allocate(BIG, BIG, [], SIZE) == Idmap(1000000, 1000000, SIZE)


def test_many_containers_never_overlap_and_are_aligned():
    used: list[Idmap] = []
    for _ in range(300):
        m = allocate(BIG, BIG, used, SIZE)
        assert (m.uid_base - 1000000) % SIZE == 0
        assert m.uid_base == m.gid_base
        assert not any(_overlap(m.uid_range, u.uid_range) for u in used)
        used.append(m)
    # Lowest first: 300 maps fill the first 300 slots exactly.
    assert max(u.uid_base for u in used) == 1000000 + 299 * SIZE


def test_freed_hole_is_reused():
    used = []
    for _ in range(5):
        used.append(allocate(BIG, BIG, used, SIZE))
    freed = used.pop(2)
    assert allocate(BIG, BIG, used, SIZE) == freed
    # With no hole, the next one goes after the last.
    used.append(freed)
    assert allocate(BIG, BIG, used, SIZE).uid_base == 1000000 + 5 * SIZE


def test_used_gid_side_blocks_a_slot_too():
    # A map (e.g. made by hand) whose gids sit on slot 0 and uids elsewhere.
    odd = Idmap(uid_base=900000000, gid_base=1000000, size=SIZE)
    m = allocate(BIG, BIG, [odd], SIZE)
    assert m.uid_base == 1000000 + SIZE


def test_unaligned_used_map_pushes_to_the_next_aligned_slot():
    odd = Idmap(1000000 + 10, 1000000 + 10, 100)
    assert allocate(BIG, BIG, [odd], SIZE).uid_base == 1000000 + SIZE


def test_maps_of_other_sizes_are_respected():
    used = [Idmap(1000000, 1000000, 3 * SIZE)]
    assert allocate(BIG, BIG, used, SIZE).uid_base == 1000000 + 3 * SIZE


def test_alignment_is_relative_to_the_range_start():
    rng = [IdRange(1000, 10 * SIZE)]
    used = [allocate(rng, rng, [], SIZE)]
    assert used[0].uid_base == 1000
    assert allocate(rng, rng, used, SIZE).uid_base == 1000 + SIZE


def test_multiple_ranges_are_used_in_order_and_adjacent_ones_merge():
    uids = [IdRange(5000000, 2 * SIZE), IdRange(1000000, SIZE),
            IdRange(1000000 + SIZE, SIZE)]
    used: list[Idmap] = []
    bases = []
    for _ in range(4):
        m = allocate(uids, uids, used, SIZE)
        used.append(m)
        bases.append(m.uid_base)
    assert bases == [1000000, 1000000 + SIZE, 5000000, 5000000 + SIZE]
    with pytest.raises(errors.IdmapExhausted):
        allocate(uids, uids, used, SIZE)


def test_map_lies_in_both_a_subuid_and_a_subgid_range():
    uids = [IdRange(1000000, 4 * SIZE)]
    gids = [IdRange(1000000 + 2 * SIZE, 4 * SIZE)]
    m = allocate(uids, gids, [], SIZE)
    assert m.uid_base == m.gid_base == 1000000 + 2 * SIZE


def test_exhaustion_names_the_size_and_ranges():
    rng = [IdRange(1000000, 2 * SIZE)]
    used = [Idmap(1000000, 1000000, SIZE),
            Idmap(1000000 + SIZE, 1000000 + SIZE, SIZE)]
    with pytest.raises(errors.IdmapExhausted) as exc:
        allocate(rng, rng, used, SIZE)
    assert "65536" in str(exc.value)
    assert "1000000-1131071" in str(exc.value)


@pytest.mark.parametrize("uids, gids, kind", [
    ([], BIG, "uid"), (BIG, [], "gid")])
def test_no_ranges_at_all_is_subordinate_ids_missing(uids, gids, kind):
    with pytest.raises(errors.SubordinateIdsMissing) as exc:
        allocate(uids, gids, [], SIZE, user="nova")
    assert exc.value.kwargs["kind"] == kind
    assert "nova:1000000:1000000000" in str(exc.value)


def test_ranges_too_small_for_one_map():
    small = [IdRange(1000000, SIZE - 1)]
    with pytest.raises(errors.SubordinateIdsMissing) as exc:
        allocate(small, small, [], SIZE)
    assert "no common range of 65536 ids" in str(exc.value)


def test_disjoint_uid_and_gid_ranges_cannot_hold_a_map():
    with pytest.raises(errors.SubordinateIdsMissing):
        allocate([IdRange(1000000, SIZE)], [IdRange(2000000, SIZE)], [],
                 SIZE)


def test_allocation_stays_fast_with_thousands_of_used_maps():
    used = [Idmap(1000000 + i * SIZE, 1000000 + i * SIZE, SIZE)
            for i in range(10000)]
    hole = used.pop(7777)
    random.Random(4).shuffle(used)
    start = time.perf_counter()
    assert allocate(BIG, BIG, used, SIZE) == hole
    used.append(hole)
    assert allocate(BIG, BIG, used, SIZE).uid_base == 1000000 + 10000 * SIZE
    assert time.perf_counter() - start < 1.0
