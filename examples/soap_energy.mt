model soap_energy
use "soap_power_spectrum.mt"

index s : systems(S)
param w[a, b1, b2, l, n1, n2] ~ zeros
param e0[a] ~ zeros

tensor energy
    samples    (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s)
      ( e0[S.type[i]]
      + sum(b1, b2, l, n1, n2 where b1 <= b2)
          w[S.type[i], b1, b2, l, n1, n2]
        * ps{center_type = S.type[i], neighbor_1_type = b1, neighbor_2_type = b2}[i, l, n1, n2] )

output energy with gradients(positions, strain)
