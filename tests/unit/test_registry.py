import pytest

from ready2unlearn.errors import ConfigError
from ready2unlearn.registry import Registry


def test_register_get_and_decorator():
    reg: Registry[object] = Registry("thing")
    reg.register("alpha", 1)

    @reg.register("beta_2")
    def beta():
        return 2

    assert reg.get("alpha") == 1
    assert reg.get("beta_2") is beta
    assert reg.names() == ["alpha", "beta_2"]
    assert "alpha" in reg and len(reg) == 2


def test_unknown_name_suggests_close_match():
    reg: Registry[int] = Registry("dataset")
    reg.register("fashion_mnist", 1)
    with pytest.raises(ConfigError, match="Did you mean 'fashion_mnist'"):
        reg.get("fashion_mnst")


@pytest.mark.parametrize("bad", ["Upper", "1abc", "with-dash", ""])
def test_bad_keys_rejected(bad):
    with pytest.raises(ValueError):
        Registry("x").register(bad, 1)


def test_duplicate_rejected():
    reg: Registry[int] = Registry("x")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
