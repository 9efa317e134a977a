import subprocess
import sys

import mtdsl.math


def test_no_reference_library_at_run_time():
    code = (
        "import sys, mtdsl.math, numpy as np\n"
        "mtdsl.math.soap_radial([1.0], 0, 1, n_radial=2, cutoff=3.0, density_width=0.5)\n"
        "mtdsl.math.cg(1, 1, 2, 'e3nn'); mtdsl.math.spherical_harmonics(np.ones((1, 3)), 2, 'e3nn')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('featomic', 'sphericart', 'e3nn', 'metatensor', 'torch', 'scipy', 'sympy', 'mpmath')]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_public_names():
    for name in mtdsl.math.__all__:
        assert hasattr(mtdsl.math, name)


def test_empty_inputs():
    """No pairs (isolated atoms) must give empty arrays, never an error."""
    import numpy as np

    values, grads = mtdsl.math.spherical_harmonics(np.zeros((0, 3)), 4, "e3nn", gradients=True)
    assert values.shape == (0, 25) and grads.shape == (0, 3, 25)
    spline = mtdsl.math.soap_radial_spline(2, 3, 4.0, 0.5)
    values, grads = spline.evaluate(np.zeros(0), derivative=True)
    assert values.shape == grads.shape == (0, 3, 3)
    assert mtdsl.math.soap_radial_exact(np.zeros(0), 1, 3, 4.0, 0.0).shape == (0, 3)
    assert mtdsl.math.cosine_cutoff(np.zeros(0), 4.0, 0.5).shape == (0,)
