model rho_energy
# An energy of the expansion's l = 1 coefficients whose reverse product reads the materialized
# gradient rows of rho: the C++ operator of an exported model cannot replay it (tests/runtime/test_export_cpp.py)
use "../../../examples/spherical_expansion.mt"

index s : systems(S)
index c : irrep(1)

tensor energy
    samples    (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s) sum(b, c)
      rho{o3_lambda = 1, o3_sigma = 1, center_type = S.type[i], neighbor_type = b}[i, c, 0]
    * rho{o3_lambda = 1, o3_sigma = 1, center_type = S.type[i], neighbor_type = b}[i, c, 1]

output energy with gradients(positions, strain)
