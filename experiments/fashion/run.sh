#!/bin/sh
# Trains golcm's Fashion-MNIST VAE and teacher on the CPU, from Debian's dataset-fashion-mnist:
# converts the data to WebDataset shards, writes the random fashion pipeline, trains the VAE
# (vae.toml), then the teacher on its latents (teacher.toml). Every stage resumes where it was
# killed, and a finished stage is not redone.
#
#   experiments/fashion/run.sh            # all stages, into runs/fashion
#   FASHION=/work/runs/fashion experiments/fashion/run.sh vae teacher
#
# FASHION is the output folder, FASHION_MNIST the folder of the IDX files, GOLCM the command
# (default: go run ./experiments, from the repository root).
set -eu
cd "$(dirname "$0")/../.."
OUT=${FASHION:-runs/fashion}
SRC=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
GOLCM=${GOLCM:-go run ./experiments}
stages=${*:-data init vae teacher}

paths="-set model.path=$OUT/init -set data.sources=[\"$OUT/data/train/*.tar\"]"
for stage in $stages; do
	case $stage in
	data)
		for split in train t10k; do
			dir=$OUT/data/$split
			[ "$split" = t10k ] && dir=$OUT/data/test
			[ -f "$dir/.done" ] && continue
			rm -rf "$dir"
			$GOLCM data convert -format idx -resolution 32 -labels "$SRC/$split-labels-idx1-ubyte.gz" \
				-out "$dir/%05d.tar" "$SRC/$split-images-idx3-ubyte.gz"
			touch "$dir/.done"
		done ;;
	init)
		[ -f "$OUT/init/model_index.json" ] || $GOLCM init-model -arch fashion -seed 0 -out "$OUT/init" ;;
	vae)
		[ -f "$OUT/vae/vae/config.json" ] ||
			$GOLCM train -f experiments/fashion/vae.toml $paths -set run.output_dir="$OUT/vae" \
				-set vae.validation_sources="[\"$OUT/data/test/*.tar\"]" -set run.resume=latest ;;
	teacher)
		[ -f "$OUT/teacher/model_index.json" ] ||
			$GOLCM train -f experiments/fashion/teacher.toml $paths -set model.vae="$OUT/vae/vae" \
				-set run.output_dir="$OUT/teacher" -set run.resume=latest ;;
	*)
		echo "unknown stage $stage (stages: data init vae teacher)" >&2
		exit 2 ;;
	esac
done
