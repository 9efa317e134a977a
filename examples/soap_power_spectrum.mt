model soap_power_spectrum
use "spherical_expansion.mt"

index b1, b2  : species
index n1, n2  : radial

tensor ps
    keys       (center_type = S.type[i], neighbor_1_type = b1, neighbor_2_type = b2)
    samples    (i)
    properties (l, n_1 = n1, n_2 = n2)
    where b1 <= b2
  = (b1 == b2 ? 1.0 : sqrt(2.0)) * (-1.0)^l / sqrt(2.0 * l + 1.0)
  * sum(m) rho{o3_lambda = l, center_type = S.type[i], neighbor_type = b1}[i, m, n1]
         * rho{o3_lambda = l, center_type = S.type[i], neighbor_type = b2}[i, m, n2]

output ps with gradients(positions, strain)
