"""DeviceSpec: parsing every accepted spelling, canonical rendering, merge and matching, and the
text of each parse error."""

import pytest

from devices.device_spec import DeviceSpec, canonical_device
from devices.errors import InvalidArgumentError

FULL = "/job:localhost/replica:0/task:0/device:CPU:0"


@pytest.mark.parametrize("text, fields, canonical", [
    ("", (None, None, None, None, None), ""),
    (FULL, ("localhost", 0, 0, "CPU", 0), FULL),
    ("/job:worker/replica:1/task:7/device:gpu:3", ("worker", 1, 7, "GPU", 3),
     "/job:worker/replica:1/task:7/device:GPU:3"),
    ("/job:ps", ("ps", None, None, None, None), "/job:ps"),
    ("/job:ps/task:3", ("ps", None, 3, None, None), "/job:ps/task:3"),
    ("/task:3/job:ps", ("ps", None, 3, None, None), "/job:ps/task:3"),
    ("/cpu:0", (None, None, None, "CPU", 0), "/device:CPU:0"),
    ("/gpu:1", (None, None, None, "GPU", 1), "/device:GPU:1"),
    ("/GPU:*", (None, None, None, "GPU", None), "/device:GPU:*"),
    ("/device:GPU:*", (None, None, None, "GPU", None), "/device:GPU:*"),
    ("/device:xla_cpu:0", (None, None, None, "XLA_CPU", 0), "/device:XLA_CPU:0"),
    ("/device:CPU", (None, None, None, "CPU", None), "/device:CPU:*"),
    ("CPU:0", (None, None, None, "CPU", 0), "/device:CPU:0"),
    ("gpu", (None, None, None, "GPU", None), "/device:GPU:*"),
    ("/job:ps/gpu:1", ("ps", None, None, "GPU", 1), "/job:ps/device:GPU:1"),
    ("/job:*/task:*", (None, None, None, None, None), ""),
])
def test_parse_accepts_every_spelling(text, fields, canonical):
    spec = DeviceSpec.parse(text)
    assert (spec.job, spec.replica, spec.task, spec.device_type, spec.device_index) == fields
    assert spec.to_string() == canonical
    assert str(spec) == canonical
    assert DeviceSpec.parse(canonical) == spec  # the canonical form round-trips


def test_parse_is_cached_and_specs_are_hashable():
    assert DeviceSpec.parse(FULL) is DeviceSpec.parse(FULL)
    assert len({DeviceSpec.parse("/cpu:0"), DeviceSpec.parse("/device:CPU:0"),
                DeviceSpec.parse("CPU:0")}) == 1


def test_fully_specified():
    assert DeviceSpec.parse(FULL).is_fully_specified
    assert not DeviceSpec.parse("/job:localhost/replica:0/task:0/device:CPU:*").is_fully_specified
    assert not DeviceSpec.parse("/cpu:0").is_fully_specified


def test_constructor_normalises_kind_and_validates():
    assert DeviceSpec(device_type="gpu", device_index=0).device_type == "GPU"
    with pytest.raises(InvalidArgumentError, match="invalid task -1"):
        DeviceSpec(task=-1)
    with pytest.raises(InvalidArgumentError, match="invalid job name 'a/b'"):
        DeviceSpec(job="a/b")


@pytest.mark.parametrize("text, part, why", [
    ("/job:ps/tsk:0", "'tsk:0'", "unknown component 'tsk'"),
    ("/task:x", "'task:x'", "task 'x' is not a non-negative integer"),
    ("/replica:-1", "'replica:-1'", "replica '-1' is not a non-negative integer"),
    ("/device:GPU:one", "'device:GPU:one'", "device index 'one' is not a non-negative integer"),
    ("/device:G-PU:0", "'device:G-PU:0'", "device kind 'G-PU' is not a name"),
    ("/job:", "'job:'", "empty job name"),
    ("/job:a/job:b", "'job:b'", "job given twice ('a' and 'b')"),
    ("/cpu:0/gpu:0", "'gpu:0'", "device_type given twice ('CPU' and 'GPU')"),
    ("/job:ps//task:0", "'/job:ps//task:0'", "empty component"),
    ("/job:ps/", "'/job:ps/'", "empty component"),
    ("job:ps/task:0", "'job:ps/task:0'", "must start with '/'"),
    ("/cpu:0:1", "'cpu:0:1'", "'cpu' takes at most one index"),
    ("/task:1:2", "'task:1:2'", "'task' takes exactly one value"),
    ("banana", "'banana'", "unknown component 'banana'"),
])
def test_parse_errors_name_the_bad_part(text, part, why):
    with pytest.raises(InvalidArgumentError) as info:
        DeviceSpec.parse(text)
    msg = str(info.value)
    assert f"invalid device spec {text!r}" in msg
    assert f"in {part}" in msg
    assert why in msg
    assert "/job:NAME/replica:N/task:N/device:KIND:N" in msg  # says what is expected


def test_parse_rejects_non_strings():
    with pytest.raises(InvalidArgumentError, match="must be a string or a DeviceSpec, not int"):
        DeviceSpec.parse(3)  # type: ignore[arg-type]


def test_merge_lets_the_other_specs_fields_win():
    base = DeviceSpec.parse("/job:ps/task:1/device:CPU:0")
    merged = base.merge("/task:2/gpu:1")
    assert merged.to_string() == "/job:ps/task:2/device:GPU:1"
    assert base.merge("") == base
    assert base.merge(None) == base
    assert DeviceSpec().merge(base) == base
    assert base.make_merged_spec(DeviceSpec(replica=0)).to_string() == \
        "/job:ps/replica:0/task:1/device:CPU:0"


def test_matches_and_compatibility():
    full = DeviceSpec.parse(FULL)
    for partial in ("", "/job:localhost", "/cpu:0", "/device:CPU:*", "/task:0/device:CPU:0",
                    FULL):
        assert DeviceSpec.parse(partial).matches(full), partial
        assert DeviceSpec.parse(partial).is_compatible_with(full), partial
    for other in ("/job:ps", "/gpu:0", "/cpu:1", "/task:1", "/replica:2"):
        assert not DeviceSpec.parse(other).matches(full), other
        assert not DeviceSpec.parse(other).is_compatible_with(full), other
    # compatibility is symmetric between partial specs; matching is not
    a, b = DeviceSpec.parse("/job:ps"), DeviceSpec.parse("/gpu:0")
    assert a.is_compatible_with(b) and b.is_compatible_with(a)
    assert not a.matches(b)
    assert not DeviceSpec.parse("/gpu:0").is_compatible_with("/gpu:1")


def test_task_helpers():
    a = DeviceSpec.parse("/job:w/replica:0/task:1/device:GPU:0")
    b = DeviceSpec.parse("/job:w/replica:0/task:1/device:CPU:0")
    c = DeviceSpec.parse("/job:w/replica:0/task:2/device:CPU:0")
    assert a.same_task(b) and not a.same_task(c)
    assert a.task_spec().to_string() == "/job:w/replica:0/task:1"
    assert canonical_device("/job:w/replica:0/task:1/gpu:0") == a.to_string()
