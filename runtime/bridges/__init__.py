"""A compiled model in other frameworks' calling conventions, with no evaluation of their own:
`jax_function` (`model.to_jax(output)`: JAX callbacks with a custom VJP from the native
products) and `calculator` (`model.as_calculator()`: an ASE calculator whose forces and stress
are the model's gradient blocks). The torch bridge, which evaluates (autograd of every order), is
`runtime/torch/`; the metatomic export, which writes a file, is `runtime/export/`.
"""
