// A minimal simulation engine without Python, as LAMMPS's `pair_style metatomic` loads models:
// libtorch + metatomic-torch's C++ library load an exported model and its extensions, the
// engine computes the neighbour lists the model requests (here: all pairs, no periodic images),
// runs it and backpropagates the energy. tests/runtime/test_export_cpp.py compiles and runs it.
//
//     metatomic_engine MODEL.pt EXTENSIONS_DIR < atoms.txt
//
// stdin: the number of atoms, then one line per atom `type x y z`. stdout: the energy, then the
// forces, one atom per line.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <vector>

#include <torch/script.h>
#include <metatomic/torch.hpp>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: metatomic_engine MODEL.pt EXTENSIONS_DIR < atoms.txt" << std::endl;
        return 2;
    }
    auto model = metatomic_torch::load_atomistic_model(argv[1], std::string(argv[2]));
    int64_t n = 0;
    std::cin >> n;
    auto types = torch::zeros({n}, torch::kInt32);
    auto positions = torch::zeros({n, 3}, torch::kFloat64);
    for (int64_t i = 0; i < n; i++) {
        int type;
        double x, y, z;
        std::cin >> type >> x >> y >> z;
        types[i] = type;
        positions[i][0] = x;
        positions[i][1] = y;
        positions[i][2] = z;
    }
    positions.requires_grad_(true);
    auto cell = torch::zeros({3, 3}, torch::kFloat64);
    auto pbc = torch::zeros({3}, torch::kBool);
    auto system = torch::make_intrusive<metatomic_torch::SystemHolder>(types, positions, cell, pbc);

    // the neighbour lists the model requests, all pairs within the cutoff (a molecule: no images)
    auto requests = model.run_method("requested_neighbor_lists").toList();
    for (size_t k = 0; k < requests.size(); k++) {
        auto options = requests.get(k).toCustomClass<metatomic_torch::NeighborListOptionsHolder>();
        double cutoff = options->cutoff();
        std::vector<int32_t> samples;
        std::vector<double> vectors;
        auto p = positions.detach();
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < n; j++) {
                if (i == j || (!options->full_list() && j < i)) continue;
                double d[3], r2 = 0;
                for (int x = 0; x < 3; x++) {
                    d[x] = p[j][x].item<double>() - p[i][x].item<double>();
                    r2 += d[x] * d[x];
                }
                if (std::sqrt(r2) >= cutoff) continue;
                samples.insert(samples.end(), {static_cast<int32_t>(i), static_cast<int32_t>(j), 0, 0, 0});
                vectors.insert(vectors.end(), {d[0], d[1], d[2]});
            }
        }
        int64_t pairs = static_cast<int64_t>(vectors.size() / 3);
        auto sample_values = torch::from_blob(samples.data(), {pairs, 5}, torch::kInt32).clone();
        auto values = torch::from_blob(vectors.data(), {pairs, 3, 1}, torch::kFloat64).clone();
        // differentiable with respect to the positions, as the engines register them
        auto first = sample_values.index({torch::indexing::Slice(), 0}).to(torch::kInt64);
        auto second = sample_values.index({torch::indexing::Slice(), 1}).to(torch::kInt64);
        values = (positions.index_select(0, second) - positions.index_select(0, first)).reshape({pairs, 3, 1});
        auto block = torch::make_intrusive<metatensor_torch::TensorBlockHolder>(
            values,
            torch::make_intrusive<metatensor_torch::LabelsHolder>(
                std::vector<std::string>{"first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"},
                sample_values),
            std::vector<metatensor_torch::Labels>{torch::make_intrusive<metatensor_torch::LabelsHolder>(
                std::vector<std::string>{"xyz"}, torch::arange(3, torch::kInt32).reshape({3, 1}))},
            torch::make_intrusive<metatensor_torch::LabelsHolder>(
                std::vector<std::string>{"distance"}, torch::zeros({1, 1}, torch::kInt32)));
        system->add_neighbor_list(options, block);
    }

    auto options = torch::make_intrusive<metatomic_torch::ModelEvaluationOptionsHolder>();
    options->set_length_unit("angstrom");
    auto output = torch::make_intrusive<metatomic_torch::ModelOutputHolder>();
    output->set_unit("eV");
    options->outputs.insert("energy", output);
    auto systems = c10::List<metatomic_torch::System>({system});
    auto result = model.forward({systems, options, /*check_consistency=*/true}).toGenericDict();
    auto energy_map = result.at("energy").toCustomClass<metatensor_torch::TensorMapHolder>();
    auto energy = metatensor_torch::TensorMapHolder::block_by_id(energy_map, 0)->values().sum();
    energy.backward();
    std::printf("%.17g\n", energy.item<double>());
    auto forces = -positions.grad();
    for (int64_t i = 0; i < n; i++) {
        std::printf("%.17g %.17g %.17g\n", forces[i][0].item<double>(), forces[i][1].item<double>(),
                    forces[i][2].item<double>());
    }
    return 0;
}
