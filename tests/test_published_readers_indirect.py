"""The published-layout fixtures of InDiReCT's evaluation sets (Kobs 2023, Table 13.1): DeepFashion's Category
and Attribute Prediction Benchmark and Chu and Guo's Movie Posters are read as the real sets are, Cars196 and
CUB-200-2011 give the notions' classes from their class names, and a missing file is named with its source."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from domainknowledge.chapters import indirect as chapter
from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.fixtures import write_fixtures

NAMES = ["cars196", "cub200", "deepfashion", "movie_posters"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_fixtures(tmp_path_factory.mktemp("indirect-published"), NAMES)


def test_deepfashion_reads_the_test_split_with_one_attribute_per_type(root):
    from domainknowledge.data.real.deepfashion import NO_SINGLE_ATTRIBUTE, read_deepfashion
    from domainknowledge.fixtures.deepfashion import CATEGORIES, IMAGES

    test = read_deepfashion(root, "test")
    assert len(test.paths) == IMAGES["test"] and all(p.is_file() for p in test.paths)
    assert all(p.relative_to(root / "DeepFashion").parts[0] == "img" for p in test.paths)
    assert test.category_names == tuple(name for name, _ in CATEGORIES)
    assert set(test.categories) == {"Anorak", "Blouse", "Tee"}
    assert test.attribute_names[3] == ("tight", "loose", "conventional")
    assert test.attributes[1][0] == NO_SINGLE_ATTRIBUTE                  # two textures marked positive
    assert set(test.attributes[1][1:]) == {"floral", "striped", "solid"}
    assert set(test.attributes[2]) == {"cotton", "denim", "leather"}
    assert len(read_deepfashion(root, "train").paths) == IMAGES["train"]


def test_deepfashion_names_a_missing_file_and_the_source(root, tmp_path):
    from domainknowledge.data.real.deepfashion import read_deepfashion

    shutil.copytree(root / "DeepFashion", tmp_path / "DeepFashion")
    (tmp_path / "DeepFashion" / "Anno" / "list_category_img.txt").unlink()
    with pytest.raises(DataNotFoundError, match="list_category_img.txt.*mmlab.ie.cuhk.edu.hk"):
        read_deepfashion(tmp_path)
    shutil.rmtree(tmp_path / "DeepFashion" / "Eval")
    (tmp_path / "DeepFashion" / "Anno" / "list_attr_img.txt").unlink()
    with pytest.raises(DataNotFoundError, match="list_attr_img.txt"):
        read_deepfashion(tmp_path)


def test_deepfashion_checks_the_row_count(root, tmp_path):
    from domainknowledge.data.real.deepfashion import read_deepfashion

    shutil.copytree(root / "DeepFashion", tmp_path / "DeepFashion")
    partition = tmp_path / "DeepFashion" / "Eval" / "list_eval_partition.txt"
    partition.write_text("999\n" + partition.read_text().split("\n", 1)[1])
    with pytest.raises(DataNotFoundError, match="announces 999 rows"):
        read_deepfashion(tmp_path)


def test_movie_posters_decode_both_encodings_and_skip_what_cannot_be_read(root):
    from domainknowledge.data.real.movie_posters import read_movie_posters
    from domainknowledge.fixtures.movie_posters import MOVIES_PER_YEAR, YEARS

    posters = read_movie_posters(root)
    raw = (root / "MoviePosters" / "Movie_Poster_Metadata" / "groundtruth" / "1995.txt").read_bytes()
    assert raw.startswith(b"\xff\xfe")                                   # UTF-16 with a byte-order mark
    assert len(posters.paths) == MOVIES_PER_YEAR * len(YEARS) == len(set(posters.imdb_ids))
    assert posters.skipped == len(YEARS) and posters.no_poster == len(YEARS)
    assert set(posters.genres) == {"Comedy", "Action", "Horror"}         # the first listed genre
    assert set(posters.countries) == {"USA", "UK", "India", ""}          # "N/A" has no class
    assert {p.parent.name for p in posters.paths} == {str(year) for year, _ in YEARS}


def test_movie_posters_name_a_missing_folder_and_the_source(tmp_path):
    from domainknowledge.data.real.movie_posters import read_movie_posters

    (tmp_path / "MoviePosters" / "Movie_Poster_Dataset").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="groundtruth.*wtchu"):
        read_movie_posters(tmp_path)


def test_metadata_records_parse_as_a_mongodb_export():
    from domainknowledge.data.real.movie_posters import decode_metadata, parse_metadata_records

    text = '{\n  "_id" : ObjectId("5a1b"),\n  "imdbID" : "tt1",\n  "Box_office" : null\n}\n{ "bad" : \n}\n{"imdbID" : "tt2"}\n'
    records, skipped = parse_metadata_records(decode_metadata(text.encode("utf-16")))
    assert [r["imdbID"] for r in records] == ["tt1", "tt2"] and records[0]["_id"] == "5a1b" and skipped == 1


def test_every_real_set_streams_its_images_and_takes_aspects_from_elsewhere(root):
    for name in chapter.REAL_DATASETS:
        dataset = chapter.load_real_dataset(name, root)
        assert not isinstance(dataset.images, np.ndarray)                # decoded on demand
        assert dataset.images[[0, 1]].shape == (2, chapter.REAL_IMAGE_SIZE, chapter.REAL_IMAGE_SIZE, 3)
        assert set(dataset.notions) == set(chapter.REAL_DATASETS[name])
        for notion, spec in dataset.notions.items():
            classes = set(dataset.labels[notion]) - {chapter.UNLABELLED}
            assert len(classes) >= 2 and len(spec.aspects) >= 3, (name, notion)
    cars = chapter.load_real_dataset("Cars196", root)
    assert set(cars.labels["manufacturer"]) == {"Aston Martin", "Land Rover"}   # test classes 99 and 196
    assert set(cars.labels["car type"]) == {"convertible", "SUV"}
    assert cars.notions["car model"].aspects == chapter.CAR_MODEL_NAMES
    birds = chapter.load_real_dataset("CUB200", root)
    assert len(birds.notions["bird species"].aspects) == 100                   # the training species 1-100
    assert not set(birds.labels["bird species"]) & set(birds.notions["bird species"].aspects)
