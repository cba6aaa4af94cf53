"""@serve.deployment, .options, .bind and building applications (no runtime needed)."""

from __future__ import annotations

import pickle

import pytest

from shoal import serve
from shoal.serve.config import AutoscalingConfig, DeploymentConfig, HTTPOptions, LoggingConfig
from shoal.serve.deployment import build_app
from shoal.serve.handle import DeploymentHandle


@serve.deployment
class Model:
    def __init__(self, *args, **kwargs) -> None:
        self.args = args


@serve.deployment(name="fn", num_replicas=3, max_ongoing_requests=7, user_config={"k": 1})
def handler(request):
    return "x"


def test_decorator_defaults_and_options() -> None:
    assert isinstance(Model, serve.Deployment)
    assert Model.name == "Model"
    assert Model.num_replicas == 1
    assert Model.max_ongoing_requests == 5
    assert Model.max_queued_requests == -1
    assert Model.ray_actor_options == {"num_cpus": 1}
    assert handler.name == "fn" and handler.num_replicas == 3 and handler.max_ongoing_requests == 7
    assert handler.user_config == {"k": 1}
    copy = handler.options(name="other", num_replicas=1)
    assert (copy.name, copy.num_replicas, copy.user_config) == ("other", 1, {"k": 1})
    assert handler.num_replicas == 3  # the original is unchanged


def test_auto_replicas_and_autoscaling_config() -> None:
    auto = Model.options(num_replicas="auto")
    cfg = auto.autoscaling_config
    assert (cfg.min_replicas, cfg.max_replicas, cfg.target_ongoing_requests) == (1, 100, 2.0)
    tuned = Model.options(num_replicas="auto", autoscaling_config={"max_replicas": 4, "upscale_delay_s": 1})
    assert (tuned.autoscaling_config.max_replicas, tuned.autoscaling_config.upscale_delay_s) == (4, 1)
    assert tuned.autoscaling_config.min_replicas == 1
    scaled = Model.options(autoscaling_config={"min_replicas": 2, "max_replicas": 5})
    assert scaled.config.initial_replicas() == 2
    # Switching back to a fixed count drops autoscaling.
    assert scaled.options(num_replicas=2).autoscaling_config is None


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"num_replicas": 2, "autoscaling_config": {"max_replicas": 3}}, ValueError, "num_replicas cannot be set"),
        ({"num_replicas": "many"}, ValueError, "num_replicas"),
        ({"num_replicas": -1}, ValueError, "num_replicas"),
        ({"num_replicas": 0}, ValueError, "num_replicas must be larger than 0"),
        ({"max_ongoing_requests": 0}, ValueError, "max_ongoing_requests"),
        ({"max_queued_requests": 0}, ValueError, "max_queued_requests"),
        ({"health_check_period_s": 0}, ValueError, "health_check_period_s"),
        ({"autoscaling_config": {"min_replicas": 3, "max_replicas": 2}}, ValueError, "max_replicas"),
        ({"autoscaling_config": {"bogus": 1}}, ValueError, "unknown keys"),
        ({"ray_actor_options": {"num_cpus": 1, "lifetime": "detached"}}, ValueError, "unsupported keys"),
        ({"logging_config": {"log_level": "LOUD"}}, ValueError, "log_level"),
        ({"user_config": __import__("threading").Lock()}, TypeError, "user_config must be serializable"),
    ],
)
def test_bad_options_are_clear_errors(options, error, match) -> None:
    with pytest.raises(error, match=match):
        Model.options(**options)


def test_unknown_option_names_the_option() -> None:
    with pytest.raises(TypeError, match=r"route_prefix is set with serve\.run"):
        Model.options(route_prefix="/x")
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        serve.deployment(bogus=1)
    with pytest.raises(TypeError, match="class or a function"):
        serve.deployment(42)


def test_deployments_are_not_called_directly() -> None:
    with pytest.raises(TypeError, match=r"Model\.bind"):
        Model()


def test_build_app_flattens_the_graph_and_names_uniquely() -> None:
    shared = Model.bind("leaf")
    app = Model.bind(shared, Model.bind(shared), key=[Model.options(name="Other").bind()])
    ingress, specs = build_app(app, "myapp")
    names = [s.name for s in specs]
    assert ingress == "Model"
    assert sorted(names) == ["Model", "Model_1", "Model_2", "Other"]
    assert [s.ingress for s in specs].count(True) == 1
    assert specs[-1].name == ingress and specs[-1].ingress
    args, kwargs = pickle.loads(specs[-1].serialized_init)
    assert isinstance(args[0], DeploymentHandle) and args[0].app_name == "myapp"
    assert isinstance(kwargs["key"][0], DeploymentHandle) and kwargs["key"][0].deployment_name == "Other"
    # The shared leaf is one deployment, referenced twice.
    inner_args, _ = pickle.loads(next(s for s in specs if s.name == args[1].deployment_name).serialized_init)
    assert inner_args[0].deployment_name == args[0].deployment_name


def test_versions_follow_code_and_arguments() -> None:
    v1 = build_app(Model.bind(1), "a")[1][0].version
    assert build_app(Model.bind(1), "a")[1][0].version == v1
    assert build_app(Model.bind(2), "a")[1][0].version != v1
    assert build_app(Model.options(version="v7").bind(1), "a")[1][0].version == "v7"
    # user_config changes do not change the code version (replicas are reconfigured in place).
    assert build_app(Model.options(user_config={"a": 2}).bind(1), "a")[1][0].version == v1


def test_applications_do_not_pickle() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Model.bind())
    with pytest.raises(TypeError, match="expects an Application"):
        build_app("nope", "a")


def test_config_objects_validate() -> None:
    assert HTTPOptions().host == "127.0.0.1" and HTTPOptions().port == 8000
    with pytest.raises(ValueError, match="port"):
        HTTPOptions(port=70000)
    with pytest.raises(ValueError, match="unknown keys"):
        HTTPOptions.parse({"hots": "x"})
    assert HTTPOptions.parse({"location": "EveryNode", "port": 9}).port == 9
    assert LoggingConfig.parse({"log_level": "debug"}).log_level == "DEBUG"
    with pytest.raises(TypeError, match="enable_access_log"):
        LoggingConfig(enable_access_log="yes")
    assert AutoscalingConfig(upscaling_factor=2.0).get_upscaling_factor() == 2.0
    assert AutoscalingConfig(smoothing_factor=0.5).get_downscaling_factor() == 0.5
    with pytest.raises(ValueError, match="initial_replicas"):
        AutoscalingConfig(min_replicas=1, max_replicas=3, initial_replicas=5)
    assert DeploymentConfig(ray_actor_options={"num_gpus": 1}).actor_options() == {"num_gpus": 1, "num_cpus": 1}
