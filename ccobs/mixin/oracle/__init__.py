"""The test oracle: a Python model of the rules, which decides what their promtool tests expect.

The alerts' promtool scenarios are not hand-written YAML with hand-computed
timings: each alert's condition is re-stated in Python (an ``AlertModel``)
and evaluated here with Prometheus 2.42's own ``rate`` extrapolation and
``histogram_quantile`` arithmetic, which decides when the alert becomes
pending and when it fires for the configured thresholds, windows and
``for`` durations, so the generated tests hold for any ``MixinConfig``.
``promtool test rules`` then judges the rules *and* the model: a drift in
either fails the test.

Modules: ``series`` (promtool input series and the sample store),
``evaluation`` (PromQL semantics), ``templates`` (Go template expansion and
the humanize functions), ``alert_state`` (the ``for`` state machine),
``samples`` (label sets and series the scenarios use) and ``promtool``
(scenarios and test files). The rule types (``ccobs.mixin.rule_types``) and
PromQL builders (``ccobs.mixin.promql``) do not import this package.
"""
