"""Remote sensing (extra ``geo``: rasterio, shapely, pyproj, pyogrio, rio-cogeo): GeoTIFFs of any size, read
through windows only, segmented from GeoJSON prompts in any CRS or automatically, tile by tile.

    info = raster_info("scene.tif", bands=(4, 3, 2))         # bands, stretch from overviews or a sample
    objects = read_geo_prompts("roofs.geojson", info)         # lon/lat (or any CRS) -> raster pixels
    items = geo_items(info, objects, tile=256, overlap=64)   # windows; objects on seams are never cut
    run_job(items, "out", settings=GeoJob(info=info))         # out/scene.labels.tif (COG) + scene.geojson
"""

from .assemble import assemble
from .job import GeoJob, geo_items, prompt_problem
from .prompts import GeoObject, parse_geo_prompts, read_geo_prompts
from .raster import RasterInfo, open_raster, parse_bands, raster_info, read_window
from .tiles import group_objects, tile_grid, window_around

__all__ = [
    "GeoJob", "GeoObject", "RasterInfo", "assemble", "geo_items", "group_objects", "open_raster",
    "parse_bands", "parse_geo_prompts", "prompt_problem", "raster_info", "read_geo_prompts", "read_window",
    "tile_grid", "window_around",
]
