"""Synthetic shapes-and-colours images and the conversations about them that the demo model learns.

Everything is drawn from a seeded random generator, so a seed names a data set exactly.
"""

import math
import random

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle", "star", "diamond"]
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 170),
    "orange": (250, 140, 20),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}

DESCRIBE = ["Describe the image.", "What is in this image?", "Describe what you see."]
COUNT = ["How many shapes are there?", "Count the shapes.", "How many shapes do you see?"]
SHAPE = ["What shape is this?", "What shape do you see?", "Which shape is in the image?"]
COLOUR = ["What colour is the {shape}?", "Which colour is the {shape}?"]
SMALL_TALK = [
    ("Hello!", "Hello! Send me an image and I will tell you about its shapes."),
    ("Hi", "Hello! Send me an image and I will tell you about its shapes."),
    ("Who are you?", "I am the loom demo model. I can see shapes and colours."),
    ("What can you do?", "I can name the shapes in an image, count them and tell their colours."),
    ("Thank you!", "You are welcome!"),
    ("Thanks", "You are welcome!"),
    ("Goodbye", "Goodbye!"),
    ("What is your name?", "I am the loom demo model."),
]
NO_IMAGE_ANSWER = "I do not see an image. Please send one."


def _polygon(shape, cx, cy, r):
    if shape == "square":
        h = r * 0.8
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "triangle":
        return [(cx + r * math.cos(a), cy - r * math.sin(a)) for a in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6)]
    if shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy - radius * math.sin(angle)))
        return points
    raise ValueError(shape)


def draw_scene(rng: random.Random):
    """Returns (PIL image, objects) with objects sorted left to right: [(shape, colour), ...]."""
    width = rng.randint(64, 256)
    height = max(64, min(256, int(width * rng.uniform(0.5, 2.0))))
    grey = rng.randint(95, 165)
    pixels = np.full((height, width, 3), grey, dtype=np.float32)
    if rng.random() < 0.5:
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(5, 20), size=pixels.shape)
        pixels += noise
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)

    count = rng.choice([1, 1, 2, 3])
    shapes = rng.sample(SHAPES, count)
    placed = []
    side = min(width, height)
    for shape in shapes:
        for _ in range(200):
            r = side * rng.uniform(0.13, 0.24 if count == 1 else 0.19)
            cx, cy = rng.uniform(r + 2, width - r - 2), rng.uniform(r + 2, height - r - 2)
            if all(math.hypot(cx - x, cy - y) > r + q + 3 for x, y, q, _, _ in placed):
                placed.append((cx, cy, r, shape, rng.choice(list(COLOURS))))
                break
    for cx, cy, r, shape, colour in placed:
        fill = COLOURS[colour]
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(shape, cx, cy, r), fill=fill)
    placed.sort(key=lambda p: p[0])
    return image, [(shape, colour) for _, _, _, shape, colour in placed]


def describe(objects):
    parts = [f"{'an' if colour == 'orange' else 'a'} {colour} {shape}" for shape, colour in objects]
    if len(parts) == 1:
        text = parts[0]
    else:
        text = ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[0].upper() + text[1:] + "."


def question_and_answer(rng: random.Random, objects):
    kinds = ["describe", "count", "colour"] + (["shape", "shape"] if len(objects) == 1 else [])
    kind = rng.choice(kinds)
    if kind == "describe":
        return rng.choice(DESCRIBE), describe(objects)
    if kind == "count":
        n = len(objects)
        answer = "There is one shape." if n == 1 else f"There are {NUMBER_WORDS[n]} shapes."
        return rng.choice(COUNT), answer
    if kind == "shape":
        return rng.choice(SHAPE), f"It is a {objects[0][0]}."
    shape, colour = rng.choice(objects)
    return rng.choice(COLOUR).format(shape=shape), f"The {shape} is {colour}."


def user_turn(rng: random.Random, text, with_image):
    if not with_image:
        return {"role": "user", "content": [{"type": "text", "text": text}]}
    parts = [{"type": "image"}, {"type": "text", "text": text}]
    if rng.random() < 0.3:
        parts.reverse()  # images after the text must work too
    return {"role": "user", "content": parts}


def sample(rng: random.Random):
    """Returns (messages, image or None). The last assistant message is the answer to check."""
    kind = rng.random()
    if kind < 0.07:
        question, answer = rng.choice(SMALL_TALK)
        return [user_turn(rng, question, False), {"role": "assistant", "content": answer}], None
    if kind < 0.10:
        question = rng.choice(COLOUR).format(shape=rng.choice(SHAPES)) if rng.random() < 0.5 else rng.choice(DESCRIBE)
        return [user_turn(rng, question, False), {"role": "assistant", "content": NO_IMAGE_ANSWER}], None
    image, objects = draw_scene(rng)
    first_q, first_a = question_and_answer(rng, objects)
    messages = [user_turn(rng, first_q, True), {"role": "assistant", "content": first_a}]
    if kind < 0.25:  # a second turn about the image of the first turn
        second_q, second_a = question_and_answer(rng, objects)
        messages += [user_turn(rng, second_q, False), {"role": "assistant", "content": second_a}]
    return messages, image
