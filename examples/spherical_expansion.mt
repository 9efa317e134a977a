model spherical_expansion

hyper cutoff      = 5.0
hyper n_radial    = 6
hyper max_angular = 4
hyper atomic_width = 0.3
# featomic's weight of the central atom in its own density (its default 1.0); with any weight,
# featomic's (centre type, same neighbour type) blocks hold every centre of that type
hyper center_atom_weight = 1.0

input S : systems
pairs P = neighbors(S, cutoff = cutoff)

dim radial  = range(n_radial)
dim angular = range(max_angular + 1)
dim species = species(S)

index n       : radial
index l       : angular
index a, b    : species
index i       : atoms(S)
index m       : irrep(l)

tensor rho
    keys       (o3_lambda = l, o3_sigma = 1, center_type = S.type[i], neighbor_type = b)
    samples    (i)
    components (o3_mu = m)
    properties (n)
  = ( sum(p in P.from(i) where S.type[P.second[p]] == b)
        soap_radial(P.distance[p], n, l, n_radial = n_radial, cutoff = cutoff,
                    density_width = atomic_width)
      * cosine_cutoff(P.distance[p], cutoff, width = 0.5)
      * sph(P.vector[p], l, m) )
    # the central atom itself, at distance 0, where only l = 0 is non-zero (the radial integral
    # vanishes as r^l there): soap_radial(0, n, 0) Y_00, Y_00 = 1 / sqrt(4 pi). The factor
    # cg(l, m, 0, z, l, m) = 1 only carries the irrep of m. A present term even with weight 0,
    # so every centre has a sample in its own type's block, as in featomic.
  + center_atom_weight
  * sum(j in atoms(S), z in irrep(0) where j == i and S.type[j] == b)
        cg(l, m, 0, z, l, m)
      * (l == 0 ? soap_radial(0.0, n, 0, n_radial = n_radial, cutoff = cutoff,
                          density_width = atomic_width) / sqrt(4.0 * pi) : 0.0)

output rho with gradients(positions, strain)
